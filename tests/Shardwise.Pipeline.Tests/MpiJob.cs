using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Distributed;

namespace Shardwise.Pipeline.Tests;

/// <summary>Runs the pipeline probe (built with these tests and copied next to them) as a real mpirun job.</summary>
internal sealed record MpiJob(int ExitCode, string Output, TimeSpan Elapsed)
{
    public static MpiJob Run(int ranks, TimeSpan commTimeout, TimeSpan limit, string[] probeArguments, params string[] mpirunOptions) =>
        Run("Shardwise.Pipeline.Probe.dll", ranks, commTimeout, limit, probeArguments, mpirunOptions);

    /// <summary>Runs <paramref name="exe"/> (a dll next to the tests) under mpirun, or alone when <paramref name="ranks"/> is 0.</summary>
    public static MpiJob Run(string exe, int ranks, TimeSpan commTimeout, TimeSpan limit, string[] probeArguments, params string[] mpirunOptions) =>
        Run(exe, ranks, commTimeout, limit, probeArguments, new System.Collections.Generic.Dictionary<string, string>(), mpirunOptions);

    /// <summary>With extra environment variables, exported to every rank.</summary>
    public static MpiJob Run(string exe, int ranks, TimeSpan commTimeout, TimeSpan limit, string[] probeArguments,
        System.Collections.Generic.IReadOnlyDictionary<string, string> environment, params string[] mpirunOptions)
    {
        string mpirun = FindOnPath("mpirun")
            ?? throw new AssertInconclusiveException("mpirun is not on PATH; scripts/setup.sh installs Open MPI");
        string probe = Path.Combine(AppContext.BaseDirectory, exe);
        Assert.IsTrue(File.Exists(probe), $"{probe} is missing: the test project's reference to the probe should copy it");

        var start = new ProcessStartInfo(ranks == 0 ? Dotnet() : mpirun) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (ranks > 0)
        {
            // As root (CI containers) mpirun needs --allow-run-as-root; the machine has fewer cores than ranks.
            foreach (string option in new[] { "--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString() }.Concat(mpirunOptions))
                start.ArgumentList.Add(option);
            foreach (string name in environment.Keys) foreach (string part in new[] { "-x", name }) start.ArgumentList.Add(part);
            foreach (string part in new[] { "-x", CommunicatorTimeout.EnvironmentVariable, Dotnet() }) start.ArgumentList.Add(part);
        }
        foreach (string part in new[] { probe }.Concat(probeArguments)) start.ArgumentList.Add(part);
        start.Environment[CommunicatorTimeout.EnvironmentVariable] = commTimeout.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["TERM"] = "dumb";
        foreach (var (name, value) in environment) start.Environment[name] = value;
        start.Environment.Remove("OMPI_COMM_WORLD_SIZE");

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        var clock = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"mpirun -np {ranks} {string.Join(" ", probeArguments)} was still running after {limit}; output:\n{output}");
        }
        process.WaitForExit();
        lock (output) return new MpiJob(process.ExitCode, output.ToString(), clock.Elapsed);
    }

    private static string Dotnet() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : FindOnPath("dotnet") ?? "dotnet";

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(directory => Path.Combine(directory, name))
        .FirstOrDefault(File.Exists);
}
