using System;
using System.Collections.Generic;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Ops;
using Shardwise.Plans;

namespace Shardwise.Models.Tests;

/// <summary>
/// Compares a generated backward pass (float64) with central finite differences of the objective, for every
/// parameter tensor (each element) and every real-valued input. The error measure is ‖a − n‖ / max(‖a‖, ‖n‖).
/// </summary>
internal sealed class GradientChecker
{
    public const double Step = 1e-6;
    public const double Tolerance = 1e-6;

    private readonly CompiledModel<double> _program;
    private readonly Func<double> _objective;
    private readonly Action _forwardAndBackward;
    private readonly List<(string Name, double[] Values, Slice Gradient)> _inputs = new();
    private Predicate<string> _zero = _ => false;

    /// <param name="objective">Runs the forward pass on the current parameters and inputs; returns the scalar checked.</param>
    /// <param name="forwardAndBackward">Runs the forward pass, then the backward pass of that objective.</param>
    public GradientChecker(CompiledModel<double> program, Func<double> objective, Action forwardAndBackward)
    {
        _program = program;
        _objective = objective;
        _forwardAndBackward = forwardAndBackward;
    }

    public GradientChecker WithInput(string name, double[] values, Slice gradient)
    {
        _inputs.Add((name, values, gradient));
        return this;
    }

    /// <summary>
    /// Slots whose gradient must be exactly zero (a layer the program skipped): checked as such, and their finite
    /// differences must vanish too, instead of the relative comparison (which needs a nonzero numeric gradient).
    /// </summary>
    public GradientChecker WithZeroGradients(Predicate<string> slot)
    {
        _zero = slot;
        return this;
    }

    /// <summary>Runs the check; returns the worst relative error seen, after asserting each tensor is within tolerance.</summary>
    public double Check()
    {
        _program.ZeroGradients();
        _forwardAndBackward();
        var analytic = _program.Gradients.ToArray();
        var inputGradients = new List<double[]>();
        foreach (var input in _inputs)
        {
            var gradient = new double[input.Values.Length];
            _program.Read(input.Gradient, gradient);
            inputGradients.Add(gradient);
        }

        double worst = 0;
        foreach (var slot in _program.Layout.Slots)
        {
            var numeric = new double[slot.Length];
            for (long i = 0; i < slot.Length; i++)
            {
                long at = slot.Offset + i;
                numeric[i] = CentralDifference(() => _program.Parameters[(int)at], v => _program.Parameters[(int)at] = v);
            }
            if (_zero(slot.Name)) AssertZero(slot.Name, analytic.AsSpan((int)slot.Offset, (int)slot.Length), numeric);
            else worst = Math.Max(worst, AssertClose(slot.Name, analytic.AsSpan((int)slot.Offset, (int)slot.Length), numeric));
        }

        for (int k = 0; k < _inputs.Count; k++)
        {
            var values = _inputs[k].Values;
            var numeric = new double[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                int at = i;
                numeric[i] = CentralDifference(() => values[at], v => values[at] = v);
            }
            worst = Math.Max(worst, AssertClose("input " + _inputs[k].Name, inputGradients[k], numeric));
        }
        return worst;
    }

    private double CentralDifference(Func<double> get, Action<double> set)
    {
        double original = get();
        set(original + Step);
        double plus = _objective();
        set(original - Step);
        double minus = _objective();
        set(original);
        return (plus - minus) / (2 * Step);
    }

    private static void AssertZero(string name, ReadOnlySpan<double> analytic, double[] numeric)
    {
        for (int i = 0; i < numeric.Length; i++)
        {
            Assert.AreEqual(0.0, analytic[i], $"{name}[{i}]: a skipped layer's gradient must be exactly zero");
            Assert.IsTrue(Math.Abs(numeric[i]) < 1e-9, $"{name}[{i}]: the loss moves with a skipped layer's parameter ({numeric[i]:E3})");
        }
    }

    private static double AssertClose(string name, ReadOnlySpan<double> analytic, double[] numeric)
    {
        double difference = 0, a = 0, n = 0;
        for (int i = 0; i < numeric.Length; i++)
        {
            difference += (analytic[i] - numeric[i]) * (analytic[i] - numeric[i]);
            a += analytic[i] * analytic[i];
            n += numeric[i] * numeric[i];
        }
        Assert.IsTrue(n > 1e-12, $"{name}: the numeric gradient is zero, so the check would prove nothing");
        double relative = Math.Sqrt(difference) / Math.Max(Math.Sqrt(a), Math.Sqrt(n));
        Assert.IsTrue(relative < Tolerance, $"{name}: relative error {relative:E3} ≥ {Tolerance:E0}");
        return relative;
    }
}

internal static class RandomData
{
    public static double[] Doubles(Random random, int count, double scale = 1.0)
    {
        var values = new double[count];
        for (int i = 0; i < count; i++) values[i] = scale * (2 * random.NextDouble() - 1);
        return values;
    }

    public static int[] Tokens(Random random, int count, int vocabulary)
    {
        var values = new int[count];
        for (int i = 0; i < count; i++) values[i] = random.Next(vocabulary);
        return values;
    }

    /// <summary>Fills every parameter with non-trivial values (LayerNorm gains near 1), never zeros.</summary>
    public static void Parameters<T>(CompiledModel<T> program, int seed) where T : unmanaged, System.Numerics.INumberBase<T>
    {
        var random = new Random(seed);
        var flat = program.Parameters;
        foreach (var slot in program.Layout.Slots)
        {
            double center = slot.Init == ParameterInit.Ones ? 1.0 : 0.0;
            for (long i = slot.Offset; i < slot.Offset + slot.Length; i++)
                flat[(int)i] = T.CreateChecked(center + 0.5 * (2 * random.NextDouble() - 1));
        }
    }

    public static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
