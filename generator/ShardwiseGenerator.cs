using System;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
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

    private static string HintName(ProgramPlan plan)
    {
        string prefix = plan.Namespace.Length == 0 ? "" : plan.Namespace + ".";
        foreach (var containing in plan.ContainingTypes) prefix += containing.Substring(containing.LastIndexOf(' ') + 1) + ".";
        return prefix + plan.ClassName + ".g.cs";
    }
}
