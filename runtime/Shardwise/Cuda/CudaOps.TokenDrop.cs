using System;
using Shardwise.Ops;

namespace Shardwise.Cuda;

// TEMPORARY: replaced by the token_drop.cu kernels before this lands.
public sealed partial class CudaOps
{
    public void GatherTokens(Slice x, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim) => throw new NotSupportedException("token drop on CUDA");

    public void GatherTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate) => throw new NotSupportedException("token drop on CUDA");

    public void ScatterTokens(Slice x, Slice layer, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim) => throw new NotSupportedException("token drop on CUDA");

    public void ScatterTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate) => throw new NotSupportedException("token drop on CUDA");
}
