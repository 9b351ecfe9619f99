using System.Globalization;
using System.Text;

namespace Shardwise.Generator.Emit;

/// <summary>Identifiers and literals for emitted code: stable, readable, invariant-culture.</summary>
internal static class Names
{
    /// <summary><c>blocks.0.attention.qkv.out</c> → <c>blocks_0_attention_qkv_out</c>.</summary>
    public static string Identifier(string dotted)
    {
        var text = new StringBuilder(dotted.Length);
        foreach (char c in dotted) text.Append(char.IsLetterOrDigit(c) ? c : '_');
        if (text.Length == 0 || char.IsDigit(text[0])) text.Insert(0, '_');
        return text.ToString();
    }

    public static string Long(long value) => value.ToString(CultureInfo.InvariantCulture) + "L";

    public static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static string String(string value) => "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>A multi-line string as a verbatim literal.</summary>
    public static string Verbatim(string value) => "@\"" + value.Replace("\"", "\"\"") + "\"";
}
