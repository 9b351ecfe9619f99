using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Kernels.Tests.Infrastructure;

/// <summary>Builds the SIMT emulation library once per run (Shardwise.CudaEmulation.Tests has a setup of its own).</summary>
[TestClass]
public static class AssemblySetup
{
    [AssemblyInitialize]
    public static void BuildEmulation(TestContext context) => SimtEmulator.Initialize();
}
