using System;
using System.Collections.Generic;
using Shardwise.Generator.Model;

namespace Shardwise.Generator.Planning;

/// <summary>
/// Layer paths as the planners that act on whole layers (<c>[Checkpoint]</c>, <c>[LayerDrop]</c>) see them: which ops a
/// layer holds, and which layers carry an attribute.
/// </summary>
internal static class LayerPaths
{
    /// <summary>Whether an op of layer <paramref name="opLayer"/> belongs to <paramref name="layer"/> (itself or a layer inside it).</summary>
    public static bool Inside(string opLayer, string layer)
        => opLayer == layer || (opLayer.Length > layer.Length && opLayer.StartsWith(layer, StringComparison.Ordinal) && opLayer[layer.Length] == '.');

    /// <summary>
    /// The outermost layers for which <paramref name="flagged"/> holds, in model order; an array's flag is carried by its
    /// elements, each one layer here.
    /// </summary>
    public static List<LayerNode> Outermost(LayerNode root, Func<LayerNode, bool> flagged)
    {
        var layers = new List<LayerNode>();
        Collect(root);
        return layers;

        void Collect(LayerNode node)
        {
            if (flagged(node) && node.Kind != LayerKind.Array && node.Path.Length > 0)
            {
                layers.Add(node);
                return;
            }
            foreach (var child in node.Children) Collect(child);
        }
    }
}
