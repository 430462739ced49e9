using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("XlstmRun.Tests")]
