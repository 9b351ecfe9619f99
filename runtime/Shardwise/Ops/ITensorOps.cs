namespace Shardwise.Ops;

/// <summary>
/// The operations generated code calls. Every call names its buffers by <see cref="Slice"/> and its sizes
/// explicitly, so a backend needs no shape bookkeeping and allocates nothing per call.
/// Conventions: row-major; a "row" is one position (batch × sequence flattened); Linear weights are
/// <c>[out, in]</c> (PyTorch's layout). Backward methods that produce an activation gradient take
/// <c>accumulate</c>: false overwrites the destination, true adds to it. Parameter gradients are always added to,
/// so gradient accumulation across micro-batches needs no extra pass.
/// </summary>
public interface ITensorOps<T> where T : unmanaged
{
    /// <summary>Allocates (or re-allocates) an arena; contents start at zero.</summary>
    void Allocate(Arena arena, long elements);

    /// <summary>Allocates the index arena; contents start at zero.</summary>
    void AllocateIndices(long elements);

    /// <summary>
    /// Gives the activation arena and the index arena <paramref name="count"/> independent windows of their current
    /// size (one per pipeline micro-batch in flight); window 0 is selected and keeps its contents.
    /// </summary>
    void AllocateActivationWindows(int count);

    /// <summary>Makes <see cref="Arena.Activations"/> and the index arena refer to window <paramref name="window"/>.</summary>
    void SelectActivationWindow(int window);

    /// <summary>
    /// Allocates the host store of checkpointed inputs kept in host memory (<c>[Checkpoint(InputsOnHost = true)]</c>,
    /// DeepSpeed's cpu_checkpointing): pinned host memory on a GPU. Call before <see cref="AllocateActivationWindows"/>,
    /// which gives each window a store of its own.
    /// </summary>
    void AllocateHostActivations(long elements);

    /// <summary>
    /// Copies an activation into the host store at <paramref name="hostOffset"/> (its last forward use is done). A
    /// backend may run the copy beside later operations: <see cref="WaitForStash"/> comes before any operation that
    /// overwrites the source.
    /// </summary>
    void StashActivation(Slice source, long hostOffset);

    /// <summary>Later operations may overwrite the source of the stash at <paramref name="hostOffset"/>.</summary>
    void WaitForStash(long hostOffset);

    /// <summary>
    /// Copies a stashed activation back from the host store at <paramref name="hostOffset"/>, once nothing else uses the
    /// destination; it may run beside later operations until <see cref="WaitForRestore"/>.
    /// </summary>
    void RestoreActivation(long hostOffset, Slice destination);

    /// <summary>Later operations may read the destination of the restore from <paramref name="hostOffset"/>.</summary>
    void WaitForRestore(long hostOffset);

    /// <summary>The elements of an arena, for loading and reading back (host-side copy on device backends).</summary>
    global::System.Span<T> View(Arena arena);

    /// <summary>Copies token indices into the index arena.</summary>
    void LoadIndices(global::System.ReadOnlySpan<int> source, IndexSlice destination);

    /// <summary>Copies real values into an arena slice.</summary>
    void Load(global::System.ReadOnlySpan<T> source, Slice destination);

    /// <summary>Copies an arena slice out.</summary>
    void Store(Slice source, global::System.Span<T> destination);

    /// <summary>Sets a slice to zero.</summary>
    void Zero(Slice destination);

    /// <summary>positions[b, t] = t for a <c>[batch, sequence]</c> index tensor.</summary>
    void Positions(IndexSlice output, int batch, int sequence);

    /// <summary>output[r, :] = table[ids[r], :].</summary>
    void Embedding(IndexSlice ids, Slice table, Slice output, int rows, int dim);

    /// <summary>dTable[ids[r], :] += dOutput[r, :].</summary>
    void EmbeddingBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim);

    /// <summary>y = x · Wᵀ (+ bias); x <c>[rows, inDim]</c>, W <c>[outDim, inDim]</c>, y <c>[rows, outDim]</c>.</summary>
    void Linear(Slice x, Slice weight, Slice? bias, Slice y, int rows, int inDim, int outDim);

    /// <summary>
    /// dx (=|+=) dy · W; dW += dyᵀ · x; dBias += Σ_rows dy. <paramref name="dx"/> is null when x needs no gradient.
    /// </summary>
    void LinearBackward(Slice x, Slice weight, Slice dy, Slice? dx, Slice dWeight, Slice? dBias,
        int rows, int inDim, int outDim, bool accumulate);

    /// <summary>
    /// y = (x − mean) · rstd · gamma + beta over the last dimension (eps = 1e-5, biased variance);
    /// saves mean and rstd (<c>[rows]</c> each) for the backward pass.
    /// </summary>
    void LayerNorm(Slice x, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim);

    /// <summary>
    /// A residual add and the LayerNorm that reads its sum, as one op: sum = a + b, then y = LayerNorm(sum) with mean
    /// and rstd saved, exactly <see cref="Add"/> into <paramref name="sum"/> then <see cref="LayerNorm"/> of it.
    /// <paramref name="sum"/> may be <paramref name="a"/> or <paramref name="b"/> (an in-place residual stream). The
    /// sum is kept because it is the residual stream the next add and the LayerNorm's backward read. The generator
    /// emits it for an Add whose output the next forward op normalises (the CUDA backend runs it as one launch of
    /// residual_layernorm_forward, instead of an add kernel then a LayerNorm kernel that reads the sum back).
    /// </summary>
    void AddLayerNorm(Slice a, Slice b, Slice sum, Slice gamma, Slice beta, Slice y, Slice mean, Slice rstd, int rows, int dim);

    /// <summary>dx (=|+=) ∂L/∂x; dGamma += Σ dy·x̂; dBeta += Σ dy.</summary>
    void LayerNormBackward(Slice x, Slice gamma, Slice mean, Slice rstd, Slice dy, Slice dx,
        Slice dGamma, Slice dBeta, int rows, int dim, bool accumulate);

    /// <summary>y = GeLU(x), tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    void Gelu(Slice x, Slice y, long count);

    /// <summary>dx (=|+=) dy · GeLU′(x).</summary>
    void GeluBackward(Slice x, Slice dy, Slice dx, long count, bool accumulate);

    /// <summary>
    /// A Linear whose output feeds only a GeLU, as one op: pre = x · Wᵀ (+ bias), y = GeLU(pre), exactly
    /// <see cref="Linear"/> into <paramref name="preActivation"/> then <see cref="Gelu"/> into <paramref name="y"/>.
    /// pre is kept because GeLU's backward reads it. The generator emits it for a Linear → GeLU pair (the CUDA backend
    /// runs it as one cuBLASLt matmul with the GELU_AUX_BIAS epilogue).
    /// </summary>
    void LinearGelu(Slice x, Slice weight, Slice? bias, Slice preActivation, Slice y, int rows, int inDim, int outDim);

    /// <summary>
    /// The backward of <c>Linear(GeLU(pre))</c> where the GeLU output x feeds only this Linear: dPre = (dy · W) ⊙
    /// GeLU′(pre) (overwritten); dW += dyᵀ · x; dBias += Σ_rows dy. Exactly <see cref="LinearBackward"/> with
    /// dx = dPre and accumulate false, then <see cref="GeluBackward"/> in place over dPre; x's own gradient is never
    /// stored. The generator emits it only where both gradients would be overwritten (the CUDA backend puts GeLU′
    /// into the dx GEMM's DGELU epilogue).
    /// </summary>
    void GeluLinearBackward(Slice preActivation, Slice x, Slice weight, Slice dy, Slice dPreActivation, Slice dWeight,
        Slice? dBias, int rows, int inDim, int outDim);

    /// <summary>y[r, :] += bias (a row-parallel Linear adds its bias once, after the all-reduce of the partial sums).</summary>
    void AddBias(Slice y, Slice bias, int rows, int dim);

    /// <summary>dBias += Σ_rows dy.</summary>
    void AddBiasBackward(Slice dy, Slice dBias, int rows, int dim);

    /// <summary>y = a + b.</summary>
    void Add(Slice a, Slice b, Slice y, long count);

    /// <summary>dx (=|+=) dy: the gradient of one operand of an add (or of an identity).</summary>
    void AddBackward(Slice dy, Slice dx, long count, bool accumulate);

    /// <summary>
    /// y = factor · x; <paramref name="y"/> may be <paramref name="x"/>. Progressive layer drop scales a kept layer's
    /// branch output, then its gradient, by 1/keep-probability; a factor of 1 copies exactly.
    /// </summary>
    void Scale(Slice x, Slice y, T factor, long count);

    /// <summary>
    /// y[b, j, :] = x[b, kept[b, j], :] for j &lt; <paramref name="keptCount"/>: the tokens random-LTD (DeepSpeed's random
    /// layerwise token dropping) runs a layer on, each sample's packed at the front in order. <paramref name="kept"/> is
    /// <c>[batch, keptCount]</c> packed, each row strictly increasing in [0, sequence); x is <c>[batch, sequence, dim]</c>,
    /// y <c>[batch, keptCount, dim]</c>.
    /// </summary>
    void GatherTokens(Slice x, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim);

    /// <summary>
    /// The gradient of <see cref="GatherTokens"/>: dx[b, kept[b, j], :] (=|+=) dy[b, j, :]; overwriting sets the rows
    /// not kept to zero.
    /// </summary>
    void GatherTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate);

    /// <summary>
    /// y[b, t, :] = layer[b, j, :] where t = kept[b, j], else x[b, t, :]: a random-LTD layer's output for the tokens it
    /// ran on, its input for the tokens that skipped it. y must not overlap x or layer.
    /// </summary>
    void ScatterTokens(Slice x, Slice layer, IndexSlice kept, Slice y, int batch, int sequence, int keptCount, int dim);

    /// <summary>
    /// The gradient of <see cref="ScatterTokens"/> towards x: dx[b, t, :] (=|+=) dy[b, t, :] for the tokens not kept;
    /// overwriting sets the kept rows to zero. (Towards layer it is <see cref="GatherTokens"/> of dy.)
    /// </summary>
    void ScatterTokensBackward(Slice dy, IndexSlice kept, Slice dx, int batch, int sequence, int keptCount, int dim, bool accumulate);

    /// <summary>
    /// Causal multi-head self-attention core. qkv <c>[batch, seq, 3·dim]</c> holds q, k, v side by side (each split
    /// into <paramref name="heads"/> heads of dim/heads); y <c>[batch, seq, dim]</c>. Scores are scaled by
    /// 1/√headDim. Saves only the log-sum-exp of each query row's scaled scores, <c>lse[batch, heads, seq]</c> (a
    /// statistic: fp32 whatever the storage, as LayerNorm's mean), never the <c>[batch, heads, seq, seq]</c>
    /// probabilities: backward forms them again as exp(S − lse), as flash attention does.
    /// </summary>
    void Attention(Slice qkv, Slice y, Slice logSumExp, int batch, int sequence, int heads, int dim);

    /// <summary>
    /// The block-sparse pattern <see cref="Attention"/> and <see cref="AttentionBackward"/> apply on top of the causal
    /// mask (DeepSpeed's sparse_attention); null, the default, keeps every causal key. Set before the first step and
    /// left alone after: forward and backward must see the same layout.
    /// </summary>
    global::Shardwise.Sparsity.SparseAttentionPattern? AttentionSparsity { get; set; }

    /// <summary>
    /// The inputs of which Linear layers (<see cref="Linear"/>, <see cref="LinearGelu"/> and their backwards) are
    /// quantized; null, the default, quantizes none. A backend without it refuses a quantizer with a message.
    /// </summary>
    IActivationQuantizer? ActivationQuantizer
    {
        get => null;
        set
        {
            if (value is not null)
                throw new global::System.NotSupportedException($"activation quantization needs a backend that quantizes Linear inputs (CpuOps, CudaOps); {GetType().Name} has none (turn compression_training.activation_quantization off)");
        }
    }

    /// <summary>
    /// dqkv (=|+=) the gradient of the attention core, from its input qkv, its output y and the saved log-sum-exp.
    /// </summary>
    void AttentionBackward(Slice qkv, Slice y, Slice logSumExp, Slice dy, Slice dqkv,
        int batch, int sequence, int heads, int dim, bool accumulate);

    /// <summary>
    /// Mean over rows of −log softmax(logits[r])[targets[r]]. Saves nothing: the backward recomputes the softmax
    /// from the logits, so the probabilities are never stored. A target of
    /// <see cref="global::Shardwise.Cpu.CrossEntropyKernels.IgnoreIndex"/> (−100) leaves its row out of the loss, the
    /// gradient and the mean's divisor (every cross-entropy op here: "rows" in their formulas means the counted rows);
    /// a batch whose every row is ignored has loss 0 and gradient 0.
    /// </summary>
    T CrossEntropy(Slice logits, IndexSlice targets, int rows, int vocabulary);

    /// <summary>Vocabulary-parallel embedding: rows whose id is outside [first, first + count) get zero (summed over ranks after).</summary>
    void EmbeddingRange(IndexSlice ids, Slice table, Slice output, int rows, int dim, int first, int count);

    /// <summary>dTable[ids[r] − first, :] += dOutput[r, :] for ids in [first, first + count).</summary>
    void EmbeddingRangeBackward(IndexSlice ids, Slice dOutput, Slice dTable, int rows, int dim, int first, int count);

    /// <summary>Vocabulary-parallel cross-entropy, step 1: each row's maximum over this rank's logits.</summary>
    void CrossEntropyRowMax(Slice logits, Slice rowMax, int rows, int vocabulary);

    /// <summary>
    /// Step 2, after the maxima are maxed over the ranks: Σ exp(logit − max) of this rank's logits and the target's
    /// logit where this rank holds the target (zero elsewhere); both are then summed over the ranks.
    /// </summary>
    void CrossEntropyPartials(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice targetLogit, int rows, int vocabulary, int first);

    /// <summary>Step 3: the mean loss from the summed statistics, over the rows whose target is not ignored.</summary>
    T CrossEntropyFromPartials(Slice rowMax, Slice rowSum, Slice targetLogit, IndexSlice targets, int rows);

    /// <summary>dLogits (=|+=) scale · (softmax − onehot) / rows over this rank's logits, from the summed statistics.</summary>
    void CrossEntropyRangeBackward(Slice logits, IndexSlice targets, Slice rowMax, Slice rowSum, Slice dLogits, int rows, int vocabulary, int first,
        T scale, bool accumulate);

    /// <summary>dLogits (=|+=) scale · (softmax(logits) − onehot(targets)) / rows.</summary>
    void CrossEntropyBackward(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary,
        T scale, bool accumulate);

    /// <summary>
    /// <see cref="CrossEntropy"/> and then <see cref="CrossEntropyBackward"/> with the same arguments, as one op: the
    /// same loss and the same dLogits, bit for bit, from one pass over each row where the backend can (the logits are
    /// the step's largest tensor). For a backward whose scale is known before its forward (the generated
    /// <c>ForwardBackward</c>). dLogits may be logits when <paramref name="accumulate"/> is false.
    /// </summary>
    T CrossEntropyWithGradient(Slice logits, IndexSlice targets, Slice dLogits, int rows, int vocabulary,
        T scale, bool accumulate);
}
