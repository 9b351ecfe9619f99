using System;
using System.Runtime.CompilerServices;
using Shardwise.Ops;

namespace Shardwise.Cuda;

/// <summary>
/// Random-LTD's token gather and scatter and their gradients (token_drop.cu): one block per output row, each
/// sample's kept row binary-searched on the device. The kept indices are checked on the host copy of the index arena
/// first (strictly rising within the sequence, as the CPU reference demands), since a bad index on the device would
/// read or write another sample's rows.
/// </summary>
public sealed partial class CudaOps
{
    private const int TokenDropThreads = 128;

    public void GatherTokens(Slice x, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim)
    {
        Begin();
        ulong xa = Address(x, (long)batch * sequence * dim, nameof(x));
        ulong ka = CheckedKeptTokens(kept, batch, sequence, keptCount);
        ulong ya = Address(y, (long)batch * keptCount * dim, nameof(y));
        long rows = (long)batch * keptCount;
        if (rows == 0 || dim == 0) return;
        Kernel("gather_tokens").Launch(TokenDropRows(rows), TokenDropThreads, 0, null, xa, ka, ya, batch, sequence, keptCount, dim);
    }

    public void GatherTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
    {
        Begin();
        ulong dya = Address(dy, (long)batch * keptCount * dim, nameof(dy));
        ulong ka = CheckedKeptTokens(kept, batch, sequence, keptCount);
        ulong dxa = Address(dx, (long)batch * sequence * dim, nameof(dx));
        long rows = (long)batch * sequence;
        // Accumulating nothing leaves dx as it is; overwriting with no kept token still zeroes dx.
        if (rows == 0 || dim == 0 || (keptCount == 0 && accumulate)) return;
        Kernel("gather_tokens_backward").Launch(TokenDropRows(rows), TokenDropThreads, 0, null, dya, ka, dxa,
            batch, sequence, keptCount, dim, accumulate ? 1 : 0);
    }

    public void ScatterTokens(Slice x, Slice layer, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim)
    {
        Begin();
        ulong xa = Address(x, (long)batch * sequence * dim, nameof(x));
        ulong la = Address(layer, (long)batch * keptCount * dim, nameof(layer));
        ulong ka = CheckedKeptTokens(kept, batch, sequence, keptCount);
        ulong ya = Address(y, (long)batch * sequence * dim, nameof(y));
        long rows = (long)batch * sequence;
        if (rows == 0 || dim == 0) return;
        Kernel("scatter_tokens").Launch(TokenDropRows(rows), TokenDropThreads, 0, null, xa, la, ka, ya, batch, sequence, keptCount, dim);
    }

    public void ScatterTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate)
    {
        Begin();
        ulong dya = Address(dy, (long)batch * sequence * dim, nameof(dy));
        ulong ka = CheckedKeptTokens(kept, batch, sequence, keptCount);
        ulong dxa = Address(dx, (long)batch * sequence * dim, nameof(dx));
        long rows = (long)batch * sequence;
        // Every token kept and accumulating: no gradient reaches x past the layer.
        if (rows == 0 || dim == 0 || (keptCount == sequence && accumulate)) return;
        Kernel("scatter_tokens_backward").Launch(TokenDropRows(rows), TokenDropThreads, 0, null, dya, ka, dxa,
            batch, sequence, keptCount, dim, accumulate ? 1 : 0);
    }

    /// <summary>
    /// The device address of the <c>[batch, keptCount]</c> kept indices, after checking on the host that each sample's
    /// row rises strictly within [0, sequence), with the CPU reference's message.
    /// </summary>
    private ulong CheckedKeptTokens(IndexSlice kept, int batch, int sequence, int keptCount,
        [CallerMemberName] string operation = "")
    {
        long count = (long)batch * keptCount;
        ulong address = IndexAddress(kept, count, nameof(kept), operation);
        Shardwise.Cpu.TokenDropKernels.CheckKept(HostIndices(kept, count), batch, sequence, keptCount);
        return address;
    }

    /// <summary>One block per row: the grid's x dimension holds up to 2³¹ − 1 blocks.</summary>
    private static int TokenDropRows(long rows) =>
        rows <= int.MaxValue ? (int)rows : throw new ArgumentOutOfRangeException(nameof(rows), $"{rows} token rows exceed one grid.");
}
