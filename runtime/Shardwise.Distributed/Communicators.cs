using System;
using Shardwise.Distributed.Mpi;

namespace Shardwise.Distributed;

/// <summary>Which transport carries the collectives of an mpirun job (SHARDWISE_COMMUNICATOR).</summary>
public enum CommunicatorKind
{
    /// <summary>MPI over host buffers (the default): any number of ranks per GPU, or no GPU at all.</summary>
    Mpi,
    /// <summary>NCCL, one GPU per local rank; an error when that is impossible.</summary>
    Nccl,
    /// <summary>NCCL when possible, else MPI with a note saying why.</summary>
    Auto,
}

/// <summary>
/// What the NCCL side found on this node: whether libnccl (and libcuda) loaded, how many devices there are and how
/// many ranks of the job run here. <paramref name="LibraryFailure"/> is null when the libraries loaded, else the
/// loader's message (the files it tried).
/// </summary>
public sealed record NcclFacts(string? LibraryFailure, int DeviceCount, int LocalRanks);

/// <summary>The transport chosen, and, when <see cref="CommunicatorKind.Auto"/> fell back to MPI, the reason.</summary>
public sealed record CommunicatorDecision(CommunicatorKind Kind, string? Note);

/// <summary>Asked for an NCCL communicator that cannot be built here; the message says why and what to do.</summary>
public sealed class CommunicatorUnavailableException(string message) : InvalidOperationException(message);

/// <summary>
/// The NCCL communicator, provided by the layer that sees both CUDA and this project (Shardwise.Training registers
/// it in <see cref="Communicators.NcclProvider"/>): this project does not depend on CUDA.
/// </summary>
public interface INcclCommunicatorProvider
{
    /// <summary>Probes this node (libraries, devices, local ranks) without creating anything.</summary>
    NcclFacts Probe();

    /// <summary>An NCCL communicator over the ranks of <paramref name="bootstrap"/>, which it owns from then on.</summary>
    ICommunicator Create(ICommunicator bootstrap);
}

/// <summary>Picks the communicator for how this process was started.</summary>
public static class Communicators
{
    /// <summary>The environment variable that chooses the transport: <c>mpi</c> (default), <c>nccl</c> or <c>auto</c>.</summary>
    public const string KindVariable = "SHARDWISE_COMMUNICATOR";

    /// <summary>The names <see cref="ParseKind"/> accepts.</summary>
    public const string KindNames = "mpi, nccl, auto";

    /// <summary>The NCCL communicator, when a layer that links CUDA registered it; null otherwise.</summary>
    public static INcclCommunicatorProvider? NcclProvider { get; set; }

    /// <summary>
    /// An <see cref="MpiCommunicator"/> when launched by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE), else a
    /// <see cref="SingleProcessCommunicator"/>; under mpirun, SHARDWISE_COMMUNICATOR=nccl or auto asks for NCCL
    /// instead (see <see cref="Decide"/>). The timeout comes from SHARDWISE_COMM_TIMEOUT_SECONDS (default 300 s).
    /// </summary>
    public static ICommunicator Create() => Create(CommunicatorTimeout.FromEnvironment());

    /// <summary>
    /// As <see cref="Create()"/> for a job whose backend runs on a GPU when <paramref name="gpuJob"/>: then an unset
    /// SHARDWISE_COMMUNICATOR means <c>auto</c> (NCCL with one GPU per local rank, as DeepSpeed defaults to on GPUs,
    /// else MPI with a note saying why) instead of <c>mpi</c> (see <see cref="Requested"/>).
    /// </summary>
    public static ICommunicator Create(bool gpuJob) => Create(CommunicatorTimeout.FromEnvironment(), gpuJob);

    public static ICommunicator Create(TimeSpan timeout, bool gpuJob = false)
    {
        (CommunicatorKind requested, bool defaulted) = Requested(Environment.GetEnvironmentVariable(KindVariable), gpuJob);
        bool underMpirun = MpiCommunicator.IsLaunchedByMpirun;
        INcclCommunicatorProvider? provider = NcclProvider;
        CommunicatorDecision decision = requested == CommunicatorKind.Mpi || !underMpirun
            ? Decide(requested, underMpirun, null)
            : Decide(requested, underMpirun, provider?.Probe() ?? NotLinked, defaulted);
        if (decision.Note is not null) Console.Error.WriteLine($"shardwise: {decision.Note}");
        if (!underMpirun) return new SingleProcessCommunicator(timeout);
        var mpi = new MpiCommunicator(timeout);
        if (decision.Kind != CommunicatorKind.Nccl) return mpi;
        try
        {
            return provider!.Create(mpi);
        }
        catch
        {
            mpi.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The transport asked for by SHARDWISE_COMMUNICATOR's <paramref name="value"/>, and whether it was left unset: unset
    /// or empty is <c>auto</c> for a GPU job (<paramref name="gpuJob"/>: the collectives can then run on device memory)
    /// and <c>mpi</c> otherwise; anything else as <see cref="ParseKind"/> reads it.
    /// </summary>
    public static (CommunicatorKind Kind, bool Defaulted) Requested(string? value, bool gpuJob)
    {
        bool unset = string.IsNullOrWhiteSpace(value);
        return (unset && gpuJob ? CommunicatorKind.Auto : ParseKind(value), unset);
    }

    /// <summary>Parses <c>mpi</c>, <c>nccl</c> or <c>auto</c> (case-insensitive); unset or empty means <c>mpi</c>.</summary>
    public static CommunicatorKind ParseKind(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "mpi" => CommunicatorKind.Mpi,
        "nccl" => CommunicatorKind.Nccl,
        "auto" => CommunicatorKind.Auto,
        _ => throw new ArgumentException(
            $"{KindVariable}='{value}' is not a communicator; expected one of {KindNames}", nameof(value)),
    };

    /// <summary>
    /// The transport for <paramref name="requested"/> given what the NCCL probe found (<paramref name="facts"/>; null
    /// when it was not needed). NCCL needs mpirun, libnccl and one GPU per local rank; when one is missing,
    /// <see cref="CommunicatorKind.Nccl"/> throws <see cref="CommunicatorUnavailableException"/> with the reason and
    /// <see cref="CommunicatorKind.Auto"/> falls back to MPI with the reason as its note.
    /// </summary>
    /// <param name="defaulted">The request is a GPU job's default (SHARDWISE_COMMUNICATOR unset), which the note says.</param>
    public static CommunicatorDecision Decide(CommunicatorKind requested, bool underMpirun, NcclFacts? facts, bool defaulted = false)
    {
        if (requested == CommunicatorKind.Mpi) return new CommunicatorDecision(CommunicatorKind.Mpi, null);
        string? whyNot = !underMpirun
            ? "NCCL needs one process per GPU started by mpirun, and this process was not started by mpirun"
            : WhyNcclIsUnusable(facts ?? throw new ArgumentNullException(nameof(facts)));
        if (whyNot is null) return new CommunicatorDecision(CommunicatorKind.Nccl, null);
        if (requested == CommunicatorKind.Nccl)
            throw new CommunicatorUnavailableException($"{KindVariable}=nccl cannot be honoured: {whyNot}.");
        string asked = defaulted ? $"{KindVariable} is unset on a GPU job (auto)" : $"{KindVariable}=auto";
        return new CommunicatorDecision(CommunicatorKind.Mpi, $"{asked}: using MPI over host buffers because {whyNot}.");
    }

    private static string? WhyNcclIsUnusable(NcclFacts facts)
    {
        if (facts.LibraryFailure is not null)
        {
            return $"libnccl could not be loaded ({facts.LibraryFailure}); install NCCL (libnccl.so.2) or list its " +
                   $"directory in SHARDWISE_CUDA_PATH, or set {KindVariable}=mpi";
        }

        if (facts.DeviceCount <= 0) return "this node has no CUDA device";
        if (facts.LocalRanks > facts.DeviceCount)
        {
            return $"{facts.LocalRanks} ranks run on this node but it has {facts.DeviceCount} GPU(s), so two ranks " +
                   "would share one device, which NCCL refuses; start at most one rank per GPU, or set " +
                   $"{KindVariable}=mpi (the MPI path stages through host memory and lets ranks share a GPU)";
        }

        return null;
    }

    private static NcclFacts NotLinked => new(
        "the NCCL communicator is not part of this program: reference Shardwise.Training, which registers it", 0, 0);
}
