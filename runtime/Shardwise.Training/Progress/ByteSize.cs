using System;
using System.Globalization;

namespace Shardwise.Training.Progress;

/// <summary>Formats byte counts compactly in binary units, e.g. <c>0B</c>, <c>9.0KiB</c>, <c>3.2MiB</c>.</summary>
public static class ByteSize
{
    private static readonly string[] Units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

    public static string Format(long bytes)
    {
        // Whole bytes need no decimal; negative counts never come from memory accounting, but print them honestly.
        if (Math.Abs((double)bytes) < 1024)
            return bytes.ToString(CultureInfo.InvariantCulture) + "B";

        double value = bytes;
        int unit = -1;
        // Rounding to one decimal can push 1023.95 up to "1024.0"; move to the next unit before that happens.
        while (Math.Abs(value) >= 1023.95 && unit < Units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return value.ToString("0.0", CultureInfo.InvariantCulture) + Units[unit];
    }
}
