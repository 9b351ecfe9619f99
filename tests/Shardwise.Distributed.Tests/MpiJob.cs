using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Distributed.Tests;

/// <summary>
/// Runs the probe (built with these tests and copied next to them) as a real mpirun job and captures what happened:
/// mpirun's exit code, the combined output, how long it took, and the process ids the ranks printed.
/// </summary>
internal sealed record MpiJob(int ExitCode, string Output, TimeSpan Elapsed, IReadOnlyList<int> RankProcessIds)
{
    public const string ProbeFile = "Shardwise.Distributed.MpiProbe.dll";

    public static MpiJob Run(int ranks, string scenario, TimeSpan commTimeout, TimeSpan limit, params string[] mpirunOptions)
    {
        string mpirun = FindOnPath("mpirun")
            ?? throw new AssertInconclusiveException("mpirun is not on PATH; scripts/setup.sh installs Open MPI");
        string probe = Path.Combine(AppContext.BaseDirectory, ProbeFile);
        Assert.IsTrue(File.Exists(probe), $"{probe} is missing: the test project's reference to the probe should copy it");

        var start = new ProcessStartInfo(mpirun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // As root (CI containers) mpirun refuses to start without --allow-run-as-root; the CI machine has fewer
        // cores than ranks, hence --oversubscribe. All ranks are local, so no ssh is involved.
        foreach (string option in new[] { "--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString() })
            start.ArgumentList.Add(option);
        foreach (string option in mpirunOptions) start.ArgumentList.Add(option);
        foreach (string part in new[] { "-x", CommunicatorTimeout.EnvironmentVariable, Dotnet(), probe, scenario })
            start.ArgumentList.Add(part);
        start.Environment[CommunicatorTimeout.EnvironmentVariable] =
            commTimeout.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["TERM"] = "dumb"; // no terminal escape codes from the .NET console in the output
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
            Assert.Fail($"mpirun -np {ranks} {scenario} was still running after {limit}; output:\n{output}");
        }
        process.WaitForExit(); // drains the redirected streams
        TimeSpan elapsed = clock.Elapsed;

        string text;
        lock (output) text = output.ToString();
        int[] pids = Regex.Matches(text, @"^probe rank \d+ of \d+ pid (\d+)", RegexOptions.Multiline)
            .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return new MpiJob(process.ExitCode, text, elapsed, pids);
    }

    /// <summary>True while a process with this id exists and is not a zombie waiting to be reaped.</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // Format: "pid (comm) state …"; comm may contain spaces, so read the state after the last ')'.
            char state = stat[(stat.LastIndexOf(')') + 2)..][0];
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The dotnet host that runs these tests, so the probe runs on the same runtime.</summary>
    private static string Dotnet() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : FindOnPath("dotnet") ?? "dotnet";

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(directory => Path.Combine(directory, name))
        .FirstOrDefault(File.Exists);
}
