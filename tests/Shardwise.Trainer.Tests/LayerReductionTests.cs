using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;
using Shardwise.Examples;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// compression_training.layer_reduction: a two-block student (<see cref="TwoBlockTinyGpt"/>) starts from chosen blocks
/// of a trained four-block <see cref="TinyGpt"/> teacher named by --init-from. With a learning rate of 0 the first
/// update leaves the weights as loaded, so the student's first checkpoint shows exactly what came from where.
/// </summary>
[TestClass]
public sealed class LayerReductionTests
{
    private static string Section(string teacherLayers, string otherModules) => $$"""
        "compression_training": { "layer_reduction": { "enabled": true, "keep_number_layer": 2, "module_name_prefix": "blocks",
            "teacher_layer": {{teacherLayers}}, "other_module_name": {{otherModules}} } },
        """;

    private static string FrozenConfig(string root, string name, string extra)
    {
        string path = TrainerRun.WriteSmallConfig(root, name, extra);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"lr\": 2e-3", "\"lr\": 0"));
        return path;
    }

    private static (int Code, string Output) Student(params string[] args)
    {
        var (code, output, errors) = TrainerRun.Run<TwoBlockTinyGpt>(args);
        return (code, output + errors);
    }

    private static float[] Read(string run, int step, string tensor)
    {
        using var reader = SafeTensorsReader.Open(Path.Combine(run, $"step-{step:D6}", "model.safetensors"));
        var values = new float[reader.GetInfo(tensor).ElementCount];
        reader.Read(tensor, values);
        return values;
    }

    private static string[] BlockTensors(int block) =>
        new[] { "attentionNorm.weight", "attention.qkv.weight", "attention.projection.bias", "mlpNorm.bias", "expand.weight", "contract.weight" }
            .Select(name => $"blocks.{block}.{name}").ToArray();

    [TestMethod]
    public void TheStudentStartsFromTheNamedTeacherBlocks_AndKeepsItsOwnInitialisationElsewhere()
    {
        string root = TrainerRun.TempDirectory(), teacher = Path.Combine(root, "teacher");
        TrainerRun.Succeed("train", "--steps", "6", "--output", teacher, "--eval-interval", "0");

        string reduce = FrozenConfig(root, "reduce.json", Section("[1, 3]", """["tokens", "finalNorm"]"""));
        string student = Path.Combine(root, "student"), fresh = Path.Combine(root, "fresh");
        var (code, output) = Student("train", "--config", reduce, "--init-from", teacher, "--steps", "1", "--output", student, "--eval-interval", "0");
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "from the teacher");
        StringAssert.Contains(output, "blocks.0 ← blocks.1, blocks.1 ← blocks.3; also tokens, finalNorm");
        Assert.AreEqual(0, Student("train", "--config", FrozenConfig(root, "plain.json", ""), "--steps", "1", "--output", fresh, "--eval-interval", "0").Code);

        foreach (var (studentBlock, teacherBlock) in new[] { (0, 1), (1, 3) })
            foreach (var (mine, theirs) in BlockTensors(studentBlock).Zip(BlockTensors(teacherBlock)))
                CollectionAssert.AreEqual(Read(teacher, 6, theirs), Read(student, 1, mine), $"{mine} from the teacher's {theirs}");
        foreach (var module in new[] { "tokens.weight", "finalNorm.weight", "finalNorm.bias" })
            CollectionAssert.AreEqual(Read(teacher, 6, module), Read(student, 1, module), module);
        // No module names the positions: the student's own seed initialisation, not the teacher's trained table.
        CollectionAssert.AreEqual(Read(fresh, 1, "positions.weight"), Read(student, 1, "positions.weight"), "positions keep the seed's values");
        CollectionAssert.AreNotEqual(Read(teacher, 6, "positions.weight"), Read(student, 1, "positions.weight"));

        // What the teacher's layers are worth: the student's first loss is the trained teacher's neighbourhood, not a fresh model's.
        double fromTeacher = TrainerRun.MetricsColumn(student, "loss")[0], fromSeed = TrainerRun.MetricsColumn(fresh, "loss")[0];
        Assert.IsTrue(fromTeacher < fromSeed - 0.3, $"first loss from the teacher's blocks {fromTeacher:F3} against a fresh student's {fromSeed:F3}");

        // A resumed student already holds its weights: no teacher needed.
        var resumed = Student("train", "--config", reduce, "--resume", student, "--steps", "2", "--eval-interval", "0");
        Assert.AreEqual(0, resumed.Code, resumed.Output);
    }

    [TestMethod]
    public void AMissingTeacherOrTeacherLayer_IsAnErrorNamingTheKey()
    {
        string root = TrainerRun.TempDirectory(), teacher = Path.Combine(root, "teacher");
        TrainerRun.Succeed("train", "--steps", "1", "--output", teacher, "--eval-interval", "0");

        var noTeacher = Student("train", "--config", FrozenConfig(root, "a.json", Section("[1, 3]", "[]")), "--steps", "1", "--output", Path.Combine(root, "a"));
        Assert.AreNotEqual(0, noTeacher.Code);
        StringAssert.Contains(noTeacher.Output, "$.compression_training.layer_reduction.enabled: layer reduction starts TwoBlockTinyGpt from a teacher's layers: pass the teacher's weights with --init-from");

        var deeper = Student("train", "--config", FrozenConfig(root, "b.json", Section("[1, 7]", "[]")), "--init-from", teacher, "--steps", "1", "--output", Path.Combine(root, "b"));
        Assert.AreNotEqual(0, deeper.Code);
        StringAssert.Contains(deeper.Output, "the teacher has no tensor blocks.7.attentionNorm.weight, which $.compression_training.layer_reduction.teacher_layer[1] asks for TwoBlockTinyGpt's blocks.1.attentionNorm.weight");

        var depth = Student("train", "--config", FrozenConfig(root, "c.json", Section("[0, 1, 2]", """["head"]""")), "--init-from", teacher, "--steps", "1", "--output", Path.Combine(root, "c"));
        Assert.AreNotEqual(0, depth.Code);
        StringAssert.Contains(depth.Output, "$.compression_training.layer_reduction.teacher_layer: names 3 teacher layers, but TwoBlockTinyGpt has 2 layers under 'blocks'");
        StringAssert.Contains(depth.Output, "$.compression_training.layer_reduction.other_module_name[0]: 'head' names no parameter of TwoBlockTinyGpt");
    }
}

/// <summary><see cref="TinyGpt"/> with two blocks instead of four: a layer-reduction student of it.</summary>
[Model]
public partial class TwoBlockTinyGpt
{
    [Layer] private readonly Embedding tokens = new(TinyGpt.Vocabulary, TinyGpt.Width);
    [Layer] private readonly Embedding positions = new(TinyGpt.Context, TinyGpt.Width);
    [Layer] private readonly SmallBlock[] blocks = Layers.Repeat(2, () => new SmallBlock(TinyGpt.Width, TinyGpt.Heads));
    [Layer] private readonly LayerNorm finalNorm = new(TinyGpt.Width);

    [Forward]
    public Tensor Forward([Tokens(TinyGpt.Context)] Tensor ids, [Tokens(TinyGpt.Context)] Tensor targets)
    {
        var x = tokens.Forward(ids) + positions.Forward(ids.Positions());
        foreach (var block in blocks)
            x = block.Forward(x);
        return Loss.CrossEntropy(tokens.Unembed(finalNorm.Forward(x)), targets);
    }
}
