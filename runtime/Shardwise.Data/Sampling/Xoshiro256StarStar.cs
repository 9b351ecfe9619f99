using System;
using System.Numerics;

namespace Shardwise.Data;

/// <summary>
/// xoshiro256** 1.0 (Blackman and Vigna), transcribed from the reference C. We own the algorithm instead of using
/// System.Random because Random's sequence is not a documented contract across .NET versions, and a resumed run
/// must draw exactly the batches the original would have. The whole state is <see cref="State"/>.
/// </summary>
public sealed class Xoshiro256StarStar
{
    // The reference jump polynomial: advancing by 2^128 draws, so streams made by Jump never overlap in practice.
    private static readonly ulong[] JumpPolynomial =
        [0x180EC6D33CFD0ABAUL, 0xD5A61266F0C9392CUL, 0xA9582618E03FC9AAUL, 0x39ABDC4529B1661CUL];

    private ulong s0, s1, s2, s3;

    public Xoshiro256StarStar(RngState state)
    {
        if (state.IsZero)
        {
            throw new ArgumentException("an all-zero state is invalid for xoshiro256**", nameof(state));
        }

        (s0, s1, s2, s3) = (state.S0, state.S1, state.S2, state.S3);
    }

    /// <summary>State from a seed through SplitMix64, as the reference recommends.</summary>
    public static Xoshiro256StarStar FromSeed(ulong seed)
    {
        var mix = new SplitMix64(seed);
        var state = new RngState(mix.Next(), mix.Next(), mix.Next(), mix.Next());

        // SplitMix64 is a bijection of its counter, so four zeros cannot happen; keep the check anyway for clarity.
        return new Xoshiro256StarStar(state.IsZero ? new RngState(1, 0, 0, 0) : state);
    }

    /// <summary>
    /// Generator number <paramref name="stream"/> of a seed: the seeded state jumped <paramref name="stream"/> times.
    /// Data-parallel ranks use their rank as the stream so their batches differ but are reproducible.
    /// </summary>
    public static Xoshiro256StarStar FromSeed(ulong seed, int stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stream);
        var rng = FromSeed(seed);
        for (var i = 0; i < stream; i++)
        {
            rng.Jump();
        }

        return rng;
    }

    public RngState State => new(s0, s1, s2, s3);

    public ulong NextUInt64()
    {
        var result = BitOperations.RotateLeft(s1 * 5, 7) * 9;
        var t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = BitOperations.RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, bound) with no modulo bias (Lemire's multiply-and-reject).</summary>
    public ulong NextBelow(ulong bound)
    {
        ArgumentOutOfRangeException.ThrowIfZero(bound);
        var high = Math.BigMul(NextUInt64(), bound, out var low);
        if (low < bound)
        {
            var threshold = (0 - bound) % bound;
            while (low < threshold)
            {
                high = Math.BigMul(NextUInt64(), bound, out low);
            }
        }

        return high;
    }

    /// <summary>Uniform in [0, bound).</summary>
    public int NextInt(int bound)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bound);
        return (int)NextBelow((ulong)bound);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Advances by 2^128 draws (reference <c>jump()</c>).</summary>
    public void Jump()
    {
        ulong j0 = 0, j1 = 0, j2 = 0, j3 = 0;
        foreach (var word in JumpPolynomial)
        {
            for (var bit = 0; bit < 64; bit++)
            {
                if ((word & (1UL << bit)) != 0)
                {
                    j0 ^= s0;
                    j1 ^= s1;
                    j2 ^= s2;
                    j3 ^= s3;
                }

                NextUInt64();
            }
        }

        (s0, s1, s2, s3) = (j0, j1, j2, j3);
    }

    /// <summary>
    /// Splits off an independent generator: the child continues this generator's current sequence and this one
    /// jumps 2^128 ahead, so the two never share draws and both stay reproducible from the parent's state.
    /// </summary>
    public Xoshiro256StarStar Split()
    {
        var child = new Xoshiro256StarStar(State);
        Jump();
        return child;
    }
}
