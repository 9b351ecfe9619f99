using System;
using Shardwise.Distributed;

namespace Shardwise.Training.Zero;

/// <summary>The two scalars every rank must agree on before a step: a sum (gradient norm) and an any (overflow).</summary>
public static class RankAgreement
{
    public static double Sum(ICommunicator communicator, double local)
    {
        if (communicator.Size == 1) return local;
        Span<double> value = stackalloc double[] { local };
        communicator.AllReduceSum(value);
        return value[0];
    }

    /// <summary>True when any rank passes true (DeepSpeed all-reduces the overflow flag with MAX).</summary>
    public static bool Any(ICommunicator communicator, bool local)
    {
        if (communicator.Size == 1) return local;
        Span<double> flag = stackalloc double[] { local ? 1 : 0 };
        communicator.AllReduceMax(flag);
        return flag[0] > 0;
    }
}
