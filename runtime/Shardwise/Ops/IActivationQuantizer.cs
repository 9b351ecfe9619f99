namespace Shardwise.Ops;

/// <summary>
/// Quantizes the inputs of chosen Linear layers (DeepSpeed Compression's activation quantization): the layer's product
/// and its weight gradient use Q(x), the input gradient passes straight through. Which layers it covers is named by
/// their weight slices, so the generated program does not change; a backend that supports it asks before each Linear.
/// </summary>
public interface IActivationQuantizer
{
    /// <summary>Whether the Linear whose weight is <paramref name="weight"/> quantizes its input now.</summary>
    bool Quantizes(Slice weight);

    /// <summary>
    /// <paramref name="into"/> = Q(<paramref name="x"/>), x <c>[rows, inDim]</c>, for the Linear of <paramref name="weight"/>.
    /// The same x gives the same Q(x) in the forward and in the backward.
    /// </summary>
    void Quantize(Slice weight, global::System.ReadOnlySpan<float> x, global::System.Span<float> into, int rows, int inDim);

    /// <summary>
    /// The grid of the Linear of <paramref name="weight"/> for a backend that quantizes on its device (quantize_rows.cu):
    /// the bits, and asymmetric (min to max) rather than symmetric (about zero); each row its own range.
    /// </summary>
    (int Bits, bool Asymmetric) GridOf(Slice weight);
}
