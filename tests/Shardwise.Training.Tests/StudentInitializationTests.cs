using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.ModelCompression;

namespace Shardwise.Training.Tests;

/// <summary>
/// Layer reduction's map from a student's parameters to the teacher tensors they start from (DeepSpeed's
/// student_initialization), and what the student model alone shows wrong about a layer_reduction section.
/// </summary>
[TestClass]
public sealed class StudentInitializationTests
{
    /// <summary>A two-layer student: an embedding, blocks.{0,1}.{norm.weight, fc.weight, fc.bias}, a final norm.</summary>
    private static ParameterLayout Student()
    {
        string[] names = ["embed.weight", "blocks.0.norm.weight", "blocks.0.fc.weight", "blocks.0.fc.bias",
                          "blocks.1.norm.weight", "blocks.1.fc.weight", "blocks.1.fc.bias", "final.weight", "blocks_extra.weight"];
        var slots = names.Select((name, i) => new ParameterSlot(name, [4], 4L * i, 4, ParameterInit.Normal)).ToArray();
        return new ParameterLayout(slots, 4L * names.Length);
    }

    private static LayerReductionConfig Config(int[] teacher, string[] others, int? keep = null, string prefix = "blocks") =>
        new() { Enabled = true, ModuleNamePrefix = prefix, TeacherLayers = teacher, OtherModuleNames = others, KeepNumberLayer = keep };

    [TestMethod]
    public void StudentLayersTakeTheNamedTeacherLayers_AndOtherModulesTheirOwnNames()
    {
        var map = StudentInitialization.For(Config([1, 3], ["embed", "final"], keep: 2), Student(), "Student");
        Assert.AreEqual(0, map.Problems.Count, string.Join("\n", map.Problems));
        Assert.AreEqual(2, map.StudentLayers);
        var pairs = map.Copies.Select(c => $"{c.Student.Name}<-{c.TeacherName}").ToArray();
        CollectionAssert.AreEqual(new[]
        {
            "embed.weight<-embed.weight",
            "blocks.0.norm.weight<-blocks.1.norm.weight", "blocks.0.fc.weight<-blocks.1.fc.weight", "blocks.0.fc.bias<-blocks.1.fc.bias",
            "blocks.1.norm.weight<-blocks.3.norm.weight", "blocks.1.fc.weight<-blocks.3.fc.weight", "blocks.1.fc.bias<-blocks.3.fc.bias",
            "final.weight<-final.weight",
        }, pairs, "blocks_extra is not a numbered layer of blocks, and no module names it: it keeps its initialisation");
        Assert.AreEqual("$.compression_training.layer_reduction.teacher_layer[1]", map.Copies.Single(c => c.Student.Name == "blocks.1.fc.bias").Source);
        Assert.AreEqual("$.compression_training.layer_reduction.other_module_name[1]", map.Copies.Single(c => c.Student.Name == "final.weight").Source);
    }

    [TestMethod]
    public void FewerTeacherLayersThanStudentLayers_LeaveTheLaterLayersAsInitialised()
    {
        var map = StudentInitialization.For(Config([5], []), Student(), "Student");
        Assert.AreEqual(0, map.Problems.Count);
        CollectionAssert.AreEqual(new[] { "blocks.5.norm.weight", "blocks.5.fc.weight", "blocks.5.fc.bias" }, map.Copies.Select(c => c.TeacherName).ToArray());
    }

    [TestMethod]
    public void WhatTheStudentShowsWrong_IsAnErrorAtItsJsonPath()
    {
        string Only(LayerReductionConfig config)
        {
            var problems = StudentInitialization.For(config, Student(), "Student").Problems;
            Assert.AreEqual(1, problems.Count, string.Join("\n", problems));
            return problems[0];
        }

        Assert.AreEqual("$.compression_training.layer_reduction.module_name_prefix: 'layers' names no numbered layers of Student (its modules: embed, blocks, final, blocks_extra)",
            Only(Config([1], [], prefix: "layers")));
        Assert.AreEqual("$.compression_training.layer_reduction.keep_number_layer: 6, but Student has 2 layers under 'blocks' (the [Model] decides the student's depth: make them agree)",
            Only(Config([1, 3], [], keep: 6)));
        Assert.AreEqual("$.compression_training.layer_reduction.teacher_layer: names 3 teacher layers, but Student has 2 layers under 'blocks' to start from them",
            Only(Config([1, 3, 5], [])));
        Assert.AreEqual("$.compression_training.layer_reduction.other_module_name[0]: 'head' names no parameter of Student (its modules: embed, blocks, final, blocks_extra)",
            Only(Config([1], ["head"])));
        StringAssert.StartsWith(Only(Config([1], ["blocks.1"])), "$.compression_training.layer_reduction.other_module_name[0]: 'blocks.1' is under module_name_prefix");
        Assert.AreEqual("$.compression_training.layer_reduction.other_module_name[1]: 'embed.weight' takes embed.weight a second time",
            Only(Config([1], ["embed", "embed.weight"])));
    }
}
