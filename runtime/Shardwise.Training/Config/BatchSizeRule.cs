using System;
using System.Collections.Generic;

namespace Shardwise.Training.Config;

/// <summary>
/// DeepSpeed's batch rule (runtime/config.py:919-983), reproduced case by case: given two of the three
/// values the third is inferred with integer division, given one the accumulation steps default to 1,
/// and an assert then checks the product. Integer division can silently drop a remainder, so every
/// error shows the numbers and how any inferred value was computed.
/// </summary>
internal static class BatchSizeRule
{
    private const string Tb = "train_batch_size";
    private const string Mb = "train_micro_batch_size_per_gpu";
    private const string Gas = "gradient_accumulation_steps";

    public static BatchSizes Resolve(int? trainBatch, int? microBatch, int? gradAcc, int dataParallelSize, string sourceName)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dataParallelSize, 1);
        var ws = (long)dataParallelSize;
        long tb, mb, gas;
        string? inferred;
        switch (trainBatch, microBatch, gradAcc)
        {
            case ({ } t, { } m, { } g):
                (tb, mb, gas, inferred) = (t, m, g, null);
                break;
            case ({ } t, { } m, null):
                (tb, mb, gas) = (t, m, t / m / ws);
                inferred = $"{Gas} was inferred as {Tb} ({t}) // {Mb} ({m}) // data-parallel size ({ws}) = {gas}";
                break;
            case ({ } t, null, { } g):
                (tb, mb, gas) = (t, t / ws / g, g);
                inferred = $"{Mb} was inferred as {Tb} ({t}) // data-parallel size ({ws}) // {Gas} ({g}) = {mb}";
                break;
            case (null, { } m, { } g):
                (tb, mb, gas) = (m * g * ws, m, g);
                inferred = $"{Tb} was inferred as {Mb} ({m}) × {Gas} ({g}) × data-parallel size ({ws}) = {tb}";
                break;
            case ({ } t, null, null):
                (tb, mb, gas) = (t, t / ws, 1);
                inferred = $"{Gas} defaulted to 1 and {Mb} was inferred as {Tb} ({t}) // data-parallel size ({ws}) = {mb}";
                break;
            case (null, { } m, null):
                (tb, mb, gas) = (m * ws, m, 1);
                inferred = $"{Gas} defaulted to 1 and {Tb} was inferred as {Mb} ({m}) × data-parallel size ({ws}) = {tb}";
                break;
            default:
                throw new ConfigException(sourceName, [$"$: either {Tb} or {Mb} must be set (DeepSpeed asserts the same)"]);
        }

        var errors = new List<string>();
        RequirePositive(errors, Tb, tb, inferred);
        RequirePositive(errors, Mb, mb, inferred);
        RequirePositive(errors, Gas, gas, inferred);
        if (errors.Count == 0 && tb != mb * gas * ws)
        {
            errors.Add($"$.{Tb}: {Tb} ({tb}) != {Mb} ({mb}) × {Gas} ({gas}) × data-parallel size ({ws}) = {mb * gas * ws}" + Because(inferred));
        }

        if (errors.Count > 0)
        {
            throw new ConfigException(sourceName, errors);
        }

        if (tb > int.MaxValue)
        {
            throw new ConfigException(sourceName, [$"$.{Tb}: {tb} is too large"]);
        }

        return new BatchSizes((int)tb, (int)mb, (int)gas, dataParallelSize);
    }

    private static void RequirePositive(List<string> errors, string key, long value, string? inferred)
    {
        if (value <= 0)
        {
            errors.Add($"$.{key}: {key} ({value}) must be > 0" + Because(inferred));
        }
    }

    private static string Because(string? inferred) => inferred is null ? string.Empty : $" ({inferred})";
}
