using Shardwise.Cpu;

namespace Shardwise;

/// <summary>Elementwise activation functions.</summary>
public static class Activations
{
    /// <summary>GeLU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static Tensor Gelu(Tensor x)
    {
        float[] values = x.RealData(nameof(Gelu));
        var y = Tensor.Zeros(x.Shape);
        GeluKernels.Forward<float>(values, y.Data);
        return y;
    }
}
