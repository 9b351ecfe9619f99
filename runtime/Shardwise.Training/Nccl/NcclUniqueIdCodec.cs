using System;
using System.Globalization;

namespace Shardwise.Training.Nccl;

/// <summary>
/// Carries an NCCL unique id (opaque bytes) through a float broadcast: one byte per float, as the integers 0..255,
/// which every float represents exactly. Packing four bytes into one float's bits would be smaller, but some bit
/// patterns are NaNs a transport may canonicalise; 128 floats once per communicator cost nothing.
/// </summary>
public static class NcclUniqueIdCodec
{
    /// <summary>The floats that stand for <paramref name="bytes"/>, one each.</summary>
    public static float[] ToFloats(ReadOnlySpan<byte> bytes)
    {
        var floats = new float[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) floats[i] = bytes[i];
        return floats;
    }

    /// <summary>The bytes back; throws when a float is not an integer in 0..255 (a corrupted broadcast).</summary>
    public static byte[] FromFloats(ReadOnlySpan<float> floats)
    {
        var bytes = new byte[floats.Length];
        for (int i = 0; i < floats.Length; i++)
        {
            float value = floats[i];
            if (!(value >= 0 && value <= byte.MaxValue) || value != MathF.Floor(value))
            {
                throw new FormatException(string.Create(CultureInfo.InvariantCulture,
                    $"NCCL unique id element {i} is {value}, not a byte; the broadcast of the id was corrupted"));
            }

            bytes[i] = (byte)value;
        }

        return bytes;
    }
}
