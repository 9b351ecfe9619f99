using System;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Shardwise.Generator.Model;
using Shardwise.Generator.Emit;
using Shardwise.Generator.Planning;
using Shardwise.Generator.Validation;

namespace Shardwise.Generator;

/// <summary>
/// The Shardwise model compiler. Pipeline: parse each [Model] class into a value-equatable spec, trace and plan it
/// (IR, parameter layout, backward, activation plan), then emit the generated half of the class. Invalid models
/// produce no output; the analyzer reports why.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class ShardwiseGenerator : IIncrementalGenerator
{
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var models = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                KnownNames.ModelAttribute,
                predicate: static (node, _) => node is ClassDeclarationSyntax,
                transform: static (attributed, cancellationToken) => ModelValidator.ParseForGeneration(
                    (INamedTypeSymbol)attributed.TargetSymbol, attributed.SemanticModel.Compilation, cancellationToken))
            .WithTrackingName(TrackingNames.Parse)
            .Where(static model => model is not null)
            .WithTrackingName(TrackingNames.ValidModels);

        var plans = models
            .Select(static (model, _) => TryPlan(model!))
            .WithTrackingName(TrackingNames.Plan)
            .Where(static plan => plan is not null);

        context.RegisterSourceOutput(plans, static (output, plan) => output.AddSource(HintName(plan!), ModelEmitter.Emit(plan!)));

        // The trainer entry point for an executable whose one language model is compiled here.
        var project = context.CompilationProvider
            .Select(static (compilation, _) => (
                Executable: compilation.Options.OutputKind is OutputKind.ConsoleApplication or OutputKind.WindowsApplication,
                Trainer: compilation.GetTypeByMetadataName(KnownNames.TrainerCli) is not null));
        var userEntryPoints = context.SyntaxProvider
            .CreateSyntaxProvider(
                predicate: static (node, _) => node is GlobalStatementSyntax
                    || node is MethodDeclarationSyntax { Identifier.ValueText: "Main" } method && method.Modifiers.Any(SyntaxKind.StaticKeyword),
                transform: static (_, _) => true)
            .Collect()
            .Select(static (found, _) => found.Length > 0);
        var languageModels = plans
            .Where(static plan => plan!.Graph.IsLanguageModel)
            .Select(static (plan, _) => FullName(plan!))
            .Collect()
            .Select(static (names, _) => names.ToEquatableArray());
        var entryPoint = project.Combine(userEntryPoints).Combine(languageModels)
            .Select(static (input, _) => new EntryPointSpec(input.Left.Left.Executable, input.Left.Left.Trainer, input.Left.Right, input.Right))
            .WithTrackingName(TrackingNames.EntryPoint);
        context.RegisterSourceOutput(entryPoint, static (output, spec) =>
        {
            var source = EntryPointEmitter.Emit(spec);
            if (source is not null) output.AddSource("Shardwise.TrainerProgram.g.cs", source);
        });
    }

    private static ProgramPlan? TryPlan(Model.ModelSpec model)
    {
        try
        {
            return ProgramPlanner.Plan(model);
        }
        catch (Exception)
        {
            return null; // the analyzer runs the same code and reports SW0009 with the exception
        }
    }

    private static string FullName(ProgramPlan plan)
    {
        string name = "global::" + (plan.Namespace.Length == 0 ? "" : plan.Namespace + ".");
        foreach (var containing in plan.ContainingTypes) name += containing.Substring(containing.LastIndexOf(' ') + 1) + ".";
        return name + plan.ClassName;
    }

    private static string HintName(ProgramPlan plan)
    {
        string prefix = plan.Namespace.Length == 0 ? "" : plan.Namespace + ".";
        foreach (var containing in plan.ContainingTypes) prefix += containing.Substring(containing.LastIndexOf(' ') + 1) + ".";
        return prefix + plan.ClassName + ".g.cs";
    }
}
