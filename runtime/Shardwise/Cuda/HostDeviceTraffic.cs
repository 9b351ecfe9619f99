using System.Threading;

namespace Shardwise.Cuda;

/// <summary>
/// Host ↔ device copies counted so far: bytes and copies down (device → host) and up (host → device). Subtract two
/// readings to get what happened between them (e.g. one training step).
/// </summary>
public readonly record struct HostDeviceTraffic(long BytesDown, long CopiesDown, long BytesUp, long CopiesUp)
{
    /// <summary>Copies in both directions.</summary>
    public long Copies => CopiesDown + CopiesUp;

    /// <summary>Bytes in both directions.</summary>
    public long Bytes => BytesDown + BytesUp;

    public static HostDeviceTraffic operator -(HostDeviceTraffic later, HostDeviceTraffic earlier) =>
        new(later.BytesDown - earlier.BytesDown, later.CopiesDown - earlier.CopiesDown,
            later.BytesUp - earlier.BytesUp, later.CopiesUp - earlier.CopiesUp);

    public override string ToString() =>
        $"{BytesDown} bytes down in {CopiesDown} copies, {BytesUp} bytes up in {CopiesUp} copies";
}

/// <summary>
/// Counts the copies of every <see cref="DeviceMemory"/> that carries it (those a <see cref="CudaOps"/> allocates:
/// arenas, windows, scratch, optimizer state), so a test or a benchmark can see what crosses the bus per step.
/// </summary>
internal sealed class HostDeviceTrafficCounter
{
    private long bytesDown, copiesDown, bytesUp, copiesUp;

    public HostDeviceTraffic Reading => new(Interlocked.Read(ref bytesDown), Interlocked.Read(ref copiesDown),
        Interlocked.Read(ref bytesUp), Interlocked.Read(ref copiesUp));

    public void CountDown(long bytes)
    {
        Interlocked.Add(ref bytesDown, bytes);
        Interlocked.Increment(ref copiesDown);
    }

    public void CountUp(long bytes)
    {
        Interlocked.Add(ref bytesUp, bytes);
        Interlocked.Increment(ref copiesUp);
    }
}
