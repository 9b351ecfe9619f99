using System;

namespace Shardwise.Distributed.InProcess;

/// <summary>
/// One rank's deposit for a collective: a copy of its input plus a signature ("AllReduceSum(float[12])") that peers
/// compare, so ranks making different calls fail with a clear message instead of reading mismatched buffers.
/// The owner writes it only before arriving at a collective; peers read it only between the two arrivals.
/// </summary>
internal sealed class Contribution
{
    private float[] _floats = [];
    private double[] _doubles = [];

    public string Signature { get; private set; } = "";

    public int Length { get; private set; }

    public ReadOnlySpan<float> Floats => _floats.AsSpan(0, Length);

    public ReadOnlySpan<double> Doubles => _doubles.AsSpan(0, Length);

    public void Set(string signature, ReadOnlySpan<float> data)
    {
        Signature = signature;
        Length = data.Length;
        if (_floats.Length < data.Length) _floats = new float[data.Length];
        data.CopyTo(_floats);
    }

    public void Set(string signature, ReadOnlySpan<double> data)
    {
        Signature = signature;
        Length = data.Length;
        if (_doubles.Length < data.Length) _doubles = new double[data.Length];
        data.CopyTo(_doubles);
    }

    /// <summary>A deposit without data (barrier, or a broadcast from a rank that is not the root).</summary>
    public void Set(string signature)
    {
        Signature = signature;
        Length = 0;
    }
}
