using XlstmRun.Conformance;
using XlstmRun.Formats;

namespace XlstmRun.Tests.Support;

/// <summary>Converts fixtures to GGUF once per (fixture, type) for the whole test run (one store shared by every test).</summary>
public static class Models
{
    public static readonly ConvertedModels Store = new(TestPaths.TempDir());

    public static string Converted(string fixture, GgmlType type) => Store.Get(TestPaths.Fixture(fixture), fixture, type);
}
