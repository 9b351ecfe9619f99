using Microsoft.CodeAnalysis;

namespace Shardwise.Generator.Parsing;

internal static class Symbols
{
    public static bool HasAttribute(ISymbol symbol, string metadataName) => FindAttribute(symbol, metadataName) is not null;

    public static AttributeData? FindAttribute(ISymbol symbol, string metadataName)
    {
        foreach (var attribute in symbol.GetAttributes())
        {
            if (attribute.AttributeClass?.ToDisplayString() == metadataName) return attribute;
        }
        return null;
    }
}
