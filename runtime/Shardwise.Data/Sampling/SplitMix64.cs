namespace Shardwise.Data;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014), used only to expand a 64-bit seed into xoshiro's 256-bit state, as the
/// xoshiro authors recommend: nearby seeds (0, 1, 2...) give unrelated states.
/// </summary>
public struct SplitMix64
{
    private ulong state;

    public SplitMix64(ulong seed) => state = seed;

    public ulong Next()
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
