using System;
using Shardwise.Training.Config;

namespace Shardwise.Training.Precision;

/// <summary>Picks the loss scaler a config implies (DeepSpeed's CreateLossScaler plus the fp16 key mapping).</summary>
public static class LossScalerFactory
{
    public static ILossScaler Create(DeepSpeedConfig config) => Create(config.Fp16);

    public static ILossScaler Create(Fp16Config fp16)
    {
        ArgumentNullException.ThrowIfNull(fp16);
        if (!fp16.Enabled)
        {
            return StaticLossScaler.Unscaled; // fp32 and bf16
        }

        if (!fp16.IsDynamic)
        {
            return new StaticLossScaler(fp16.LossScale);
        }

        // Documented defaults even when no scaler key was written: see the quirk note on Fp16Config.
        return new DynamicLossScaler(
            initialScale: fp16.InitialScale,
            scaleFactor: 2.0,
            scaleWindow: fp16.LossScaleWindow,
            minScale: fp16.MinLossScale,
            delayedShift: fp16.Hysteresis,
            consecutiveHysteresis: fp16.ConsecutiveHysteresis,
            raiseErrorAtMinScale: true);
    }
}
