using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Shardwise.Analyzers.Tests;

[TestClass]
public sealed class TestReferencesTests
{
    [TestMethod]
    public async Task ReferenceAssembliesWithoutAPackageResolveNothing()
    {
        // If this ever resolved something, the tests would be fetching reference packs from NuGet.
        var resolved = await TestReferences.NoPackages.ResolveAsync(LanguageNames.CSharp, CancellationToken.None);

        Assert.IsEmpty(resolved);
    }

    [TestMethod]
    public void ReferencesAreTheFrameworkPlusShardwise()
    {
        var names = TestReferences.All.Select(r => Path.GetFileName(r.Display)).ToList();

        CollectionAssert.Contains(names, "System.Runtime.dll");
        CollectionAssert.Contains(names, "System.Private.CoreLib.dll");
        CollectionAssert.Contains(names, "netstandard.dll");
        CollectionAssert.Contains(names, "Shardwise.dll");
        CollectionAssert.DoesNotContain(names, "Microsoft.CodeAnalysis.dll");
        Assert.IsFalse(names.Any(n => n!.EndsWith(".so") || n.EndsWith(".dylib")), "native libraries are not metadata references");
    }
}
