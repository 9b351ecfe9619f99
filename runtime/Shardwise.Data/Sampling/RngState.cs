using System;

namespace Shardwise.Data;

/// <summary>
/// The complete state of a <see cref="Xoshiro256StarStar"/>: four words. Saving these and restoring them continues
/// the exact same sequence, which is what makes resumed training bitwise identical.
/// </summary>
public readonly record struct RngState(ulong S0, ulong S1, ulong S2, ulong S3)
{
    /// <summary>xoshiro's one forbidden state: all zeros would output zeros forever.</summary>
    public bool IsZero => (S0 | S1 | S2 | S3) == 0;

    /// <summary>Hex words, e.g. "0x0123456789abcdef": exact, and safe for JSON readers that parse numbers as doubles.</summary>
    public string[] ToHex() => [Hex(S0), Hex(S1), Hex(S2), Hex(S3)];

    public static RngState FromHex(ReadOnlySpan<string> words)
    {
        if (words.Length != 4)
        {
            throw new FormatException($"an RNG state is 4 words, got {words.Length}");
        }

        var state = new RngState(Parse(words[0]), Parse(words[1]), Parse(words[2]), Parse(words[3]));
        return state.IsZero ? throw new FormatException("an all-zero RNG state is invalid for xoshiro256**") : state;
    }

    private static string Hex(ulong value) => "0x" + value.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    private static ulong Parse(string word)
    {
        var digits = word.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? word[2..] : word;
        return ulong.TryParse(digits, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"RNG state word \"{word}\" is not a 64-bit hex number");
    }
}
