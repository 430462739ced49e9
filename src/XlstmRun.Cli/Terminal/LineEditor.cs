using System.Text;

namespace XlstmRun.Cli.Terminal;

internal enum LineStatus { Line, Eof, Interrupt }

internal readonly record struct LineResult(LineStatus Status, string Text);

/// <summary>
/// A small readline for the chat prompt on a terminal: editing (arrows, Home/End, Ctrl-A/E/B/F/K/U/W/L, Delete,
/// Alt-B/F), history (Up/Down, Ctrl-P/N), multi-line input (Ctrl-J or Alt-Enter insert a newline; a paste keeps its
/// newlines: bracketed paste), Ctrl-C (<see cref="LineStatus.Interrupt"/>) and Ctrl-D on an empty line
/// (<see cref="LineStatus.Eof"/>). Lines that wrap are redrawn correctly; characters are taken as one column wide.
/// </summary>
internal sealed class LineEditor
{
    private const int MaxHistory = 1000;
    private readonly List<string> _history = [];
    private readonly Ansi _colors;
    private readonly KeyReader _keys = new();

    // the line being edited
    private List<Rune> _buf = [];
    private int _cursor;
    private int _cursorRow; // rows between the first row of the prompt and the terminal cursor
    private string _prompt = "", _cont = "";

    public LineEditor(Ansi colors) { _colors = colors; }

    public IReadOnlyList<string> History => _history;

    public void AddHistory(string entry)
    {
        if (entry.Length == 0 || (_history.Count > 0 && _history[^1] == entry)) return;
        _history.Add(entry);
        if (_history.Count > MaxHistory) _history.RemoveAt(0);
    }

    /// <summary>Reads one line (which may hold newlines) after showing <paramref name="prompt"/>.</summary>
    public LineResult Read(string prompt, string continuation = "... ")
    {
        using var raw = RawMode.Enter();
        if (raw == null) return ReadPlain(prompt);
        _prompt = prompt;
        _cont = continuation;
        _buf = [];
        _cursor = 0;
        _cursorRow = 0;
        int histIndex = _history.Count;
        List<Rune> draft = [];
        bool paste = false;
        Out("\e[?2004h"); // bracketed paste: a pasted newline is text, not Enter
        try
        {
            Render();
            while (true)
            {
                var k = _keys.Next(paste);
                if (paste && k.Kind is KeyKind.Enter or KeyKind.NewLine)
                {
                    Insert(new Rune('\n'));
                    continue;
                }
                switch (k.Kind)
                {
                    case KeyKind.Char: Insert(k.Rune); break;
                    case KeyKind.PasteStart: paste = true; break;
                    case KeyKind.PasteEnd: paste = false; break;
                    case KeyKind.NewLine: Insert(new Rune('\n')); break;
                    case KeyKind.Enter:
                        Finish();
                        return new LineResult(LineStatus.Line, Text);
                    case KeyKind.Interrupt:
                        Finish("^C");
                        return new LineResult(LineStatus.Interrupt, Text);
                    case KeyKind.Closed:
                        Finish();
                        return new LineResult(LineStatus.Eof, "");
                    case KeyKind.EofOrDelete:
                        if (_buf.Count == 0)
                        {
                            Finish();
                            return new LineResult(LineStatus.Eof, "");
                        }
                        if (_cursor < _buf.Count) Edit(() => _buf.RemoveAt(_cursor));
                        break;
                    case KeyKind.Backspace:
                        if (_cursor > 0) Edit(() => _buf.RemoveAt(--_cursor));
                        break;
                    case KeyKind.Delete:
                        if (_cursor < _buf.Count) Edit(() => _buf.RemoveAt(_cursor));
                        break;
                    case KeyKind.Left: Move(Math.Max(0, _cursor - 1)); break;
                    case KeyKind.Right: Move(Math.Min(_buf.Count, _cursor + 1)); break;
                    case KeyKind.Home: Move(LineStart(_cursor)); break;
                    case KeyKind.End: Move(LineEnd(_cursor)); break;
                    case KeyKind.WordLeft: Move(WordLeft(_cursor)); break;
                    case KeyKind.WordRight: Move(WordRight(_cursor)); break;
                    case KeyKind.KillEnd:
                        Edit(() => _buf.RemoveRange(_cursor, LineEnd(_cursor) - _cursor));
                        break;
                    case KeyKind.KillStart:
                        Edit(() =>
                        {
                            int s = LineStart(_cursor);
                            _buf.RemoveRange(s, _cursor - s);
                            _cursor = s;
                        });
                        break;
                    case KeyKind.KillWord:
                        Edit(() =>
                        {
                            int s = WordLeft(_cursor);
                            _buf.RemoveRange(s, _cursor - s);
                            _cursor = s;
                        });
                        break;
                    case KeyKind.Clear:
                        Out("\e[H\e[2J");
                        _cursorRow = 0;
                        Render();
                        break;
                    case KeyKind.Up:
                        if (histIndex > 0)
                        {
                            if (histIndex == _history.Count) draft = [.. _buf];
                            histIndex--;
                            Replace(_history[histIndex].EnumerateRunes().ToList());
                        }
                        break;
                    case KeyKind.Down:
                        if (histIndex < _history.Count)
                        {
                            histIndex++;
                            Replace(histIndex == _history.Count ? draft : _history[histIndex].EnumerateRunes().ToList());
                        }
                        break;
                }
            }
        }
        finally
        {
            Out("\e[?2004l");
        }
    }

    private string Text
    {
        get
        {
            var sb = new StringBuilder();
            foreach (var r in _buf) sb.Append(r.ToString());
            return sb.ToString();
        }
    }

    private void Insert(Rune r)
    {
        _buf.Insert(_cursor++, r);
        Render();
    }

    private void Edit(Action a)
    {
        a();
        Render();
    }

    private void Move(int to)
    {
        if (to == _cursor) return;
        _cursor = to;
        Render();
    }

    private void Replace(List<Rune> runes)
    {
        _buf = runes;
        _cursor = runes.Count;
        Render();
    }

    private int LineStart(int i)
    {
        while (i > 0 && _buf[i - 1].Value != '\n') i--;
        return i;
    }

    private int LineEnd(int i)
    {
        while (i < _buf.Count && _buf[i].Value != '\n') i++;
        return i;
    }

    private static bool IsWord(Rune r) => Rune.IsLetterOrDigit(r) || r.Value == '_';

    private int WordLeft(int i)
    {
        while (i > 0 && !IsWord(_buf[i - 1])) i--;
        while (i > 0 && IsWord(_buf[i - 1])) i--;
        return i;
    }

    private int WordRight(int i)
    {
        while (i < _buf.Count && !IsWord(_buf[i])) i++;
        while (i < _buf.Count && IsWord(_buf[i])) i++;
        return i;
    }

    /// <summary>Moves the cursor after the text, ends the line (optionally after a mark such as ^C).</summary>
    private void Finish(string mark = "")
    {
        _cursor = _buf.Count;
        Render();
        Out(mark + "\n");
        _cursorRow = 0;
        StdStreams.MarkStdoutLineStart();
    }

    /// <summary>Redraws prompt and text from the prompt's first row, then puts the cursor where it belongs.</summary>
    private void Render()
    {
        int w = Math.Max(2, RawMode.Columns);
        var sb = new StringBuilder();
        if (_cursorRow > 0) sb.Append($"\e[{_cursorRow}A");
        sb.Append("\r\e[J");
        sb.Append(_colors.Frame(_prompt));
        int row = 0, col = _prompt.Length, curRow = 0, curCol = 0;
        void Wrap()
        {
            while (col >= w)
            {
                row++;
                col -= w;
            }
        }
        Wrap();
        sb.Append(_colors.UserStart);
        for (int i = 0; i <= _buf.Count; i++)
        {
            if (i == _cursor)
            {
                (curRow, curCol) = (row, col);
            }
            if (i == _buf.Count) break;
            var r = _buf[i];
            if (r.Value == '\n')
            {
                sb.Append(_colors.Reset).Append('\n').Append(_colors.Frame(_cont)).Append(_colors.UserStart);
                row++;
                col = _cont.Length;
                Wrap();
                continue;
            }
            sb.Append(r.Value < 0x20 || r.Value == 0x7f ? " " : r.ToString());
            col++;
            if (col == w)
            {
                // the terminal holds the cursor on the last column until the next character comes; an explicit
                // newline makes the wrap happen now, so that our idea of the cursor's row stays true
                row++;
                col = 0;
                sb.Append('\n');
            }
        }
        sb.Append(_colors.Reset);
        int endRow = row;
        if (endRow > curRow) sb.Append($"\e[{endRow - curRow}A");
        sb.Append('\r');
        if (curCol > 0) sb.Append($"\e[{curCol}C");
        _cursorRow = curRow;
        Out(sb.ToString());
    }

    private static void Out(string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        StdStreams.Stdout.Write(bytes);
    }

    /// <summary>Without raw mode: the prompt, then a line as the terminal's own line discipline edits it.</summary>
    private LineResult ReadPlain(string prompt)
    {
        Out(_colors.Frame(prompt));
        StdStreams.MarkStdoutLineStart();
        var line = _keys.ReadLineCooked();
        return line == null ? new LineResult(LineStatus.Eof, "") : new LineResult(LineStatus.Line, line);
    }

    public enum KeyKind
    {
        Char, Enter, NewLine, Backspace, Delete, EofOrDelete, Interrupt, Closed, Left, Right, Home, End, Up, Down,
        WordLeft, WordRight, KillEnd, KillStart, KillWord, Clear, PasteStart, PasteEnd, None,
    }

    public readonly record struct Key(KeyKind Kind, Rune Rune = default);

    /// <summary>Bytes from stdin turned into keys: UTF-8 characters, control keys, CSI/SS3 escape sequences.</summary>
    public sealed unsafe class KeyReader
    {
        private readonly byte[] _buf = new byte[4096];
        private int _pos, _len;

        /// <summary>The next byte; -1 when none came within <paramref name="timeoutMs"/>, -2 at end of input.</summary>
        private int NextByte(int timeoutMs = -1)
        {
            if (_pos < _len) return _buf[_pos++];
            if (timeoutMs >= 0 && !Native.WaitFor(0, Native.POLLIN, timeoutMs)) return -1;
            int n = StdStreams.Stdin.Read(_buf, 0, _buf.Length);
            if (n <= 0) return -2;
            _pos = 0;
            _len = n;
            return _buf[_pos++];
        }

        public Key Next(bool paste)
        {
            while (true)
            {
                int b = NextByte();
                if (b == -2) return new Key(KeyKind.Closed);
                if (paste && b != 0x1b)
                {
                    if (b is '\r' or '\n') return new Key(KeyKind.NewLine);
                    if (b == '\t') return new Key(KeyKind.Char, new Rune(' '));
                    if (b < 0x20) continue;
                }
                switch (b)
                {
                    case 0x01: return new Key(KeyKind.Home);        // Ctrl-A
                    case 0x02: return new Key(KeyKind.Left);        // Ctrl-B
                    case 0x03: return new Key(KeyKind.Interrupt);   // Ctrl-C
                    case 0x04: return new Key(KeyKind.EofOrDelete); // Ctrl-D
                    case 0x05: return new Key(KeyKind.End);         // Ctrl-E
                    case 0x06: return new Key(KeyKind.Right);       // Ctrl-F
                    case 0x08: case 0x7f: return new Key(KeyKind.Backspace);
                    case 0x09: return new Key(KeyKind.Char, new Rune(' '));
                    case 0x0a: return new Key(KeyKind.NewLine);     // Ctrl-J
                    case 0x0b: return new Key(KeyKind.KillEnd);     // Ctrl-K
                    case 0x0c: return new Key(KeyKind.Clear);       // Ctrl-L
                    case 0x0d: return new Key(KeyKind.Enter);
                    case 0x0e: return new Key(KeyKind.Down);        // Ctrl-N
                    case 0x10: return new Key(KeyKind.Up);          // Ctrl-P
                    case 0x15: return new Key(KeyKind.KillStart);   // Ctrl-U
                    case 0x17: return new Key(KeyKind.KillWord);    // Ctrl-W
                    case 0x1b:
                        var k = Escape();
                        if (k.Kind != KeyKind.None) return k;
                        continue;
                }
                if (b < 0x20) continue; // other control keys do nothing
                if (b < 0x80) return new Key(KeyKind.Char, new Rune(b));
                var r = Utf8(b);
                if (r != null) return new Key(KeyKind.Char, r.Value);
            }
        }

        private Rune? Utf8(int lead)
        {
            int need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : -1;
            if (need < 0) return null;
            Span<byte> bytes = stackalloc byte[4];
            bytes[0] = (byte)lead;
            for (int i = 1; i <= need; i++)
            {
                int c = NextByte(100);
                if (c < 0) return null;
                bytes[i] = (byte)c;
            }
            return Rune.DecodeFromUtf8(bytes[..(need + 1)], out var r, out _) == System.Buffers.OperationStatus.Done ? r : null;
        }

        private Key Escape()
        {
            int b = NextByte(50);
            if (b < 0) return new Key(KeyKind.None); // the Escape key alone
            if (b is '\r' or '\n') return new Key(KeyKind.NewLine); // Alt-Enter
            if (b == 'b') return new Key(KeyKind.WordLeft);
            if (b == 'f') return new Key(KeyKind.WordRight);
            if (b == 0x7f) return new Key(KeyKind.KillWord);
            if (b == 'O')
            {
                return NextByte(50) switch
                {
                    'A' => new Key(KeyKind.Up), 'B' => new Key(KeyKind.Down), 'C' => new Key(KeyKind.Right), 'D' => new Key(KeyKind.Left),
                    'H' => new Key(KeyKind.Home), 'F' => new Key(KeyKind.End), _ => new Key(KeyKind.None),
                };
            }
            if (b != '[') return new Key(KeyKind.None);
            var param = new StringBuilder();
            int f;
            while (true)
            {
                f = NextByte(50);
                if (f < 0) return new Key(KeyKind.None);
                if (f is >= 0x30 and <= 0x3f or >= 0x20 and <= 0x2f) param.Append((char)f);
                else break;
            }
            string p = param.ToString();
            bool ctrl = p.EndsWith(";5", StringComparison.Ordinal) || p.EndsWith(";3", StringComparison.Ordinal);
            return (char)f switch
            {
                'A' => new Key(KeyKind.Up),
                'B' => new Key(KeyKind.Down),
                'C' => new Key(ctrl ? KeyKind.WordRight : KeyKind.Right),
                'D' => new Key(ctrl ? KeyKind.WordLeft : KeyKind.Left),
                'H' => new Key(KeyKind.Home),
                'F' => new Key(KeyKind.End),
                '~' => p switch
                {
                    "1" or "7" => new Key(KeyKind.Home),
                    "4" or "8" => new Key(KeyKind.End),
                    "3" => new Key(KeyKind.Delete),
                    "200" => new Key(KeyKind.PasteStart),
                    "201" => new Key(KeyKind.PasteEnd),
                    _ => new Key(KeyKind.None),
                },
                _ => new Key(KeyKind.None),
            };
        }

        /// <summary>A line as the terminal's cooked mode delivers it (no trailing newline); null at end of input.</summary>
        public string? ReadLineCooked()
        {
            var bytes = new List<byte>();
            while (true)
            {
                int b = NextByte();
                if (b == -2) return bytes.Count == 0 ? null : Encoding.UTF8.GetString(bytes.ToArray());
                if (b == '\n') return Encoding.UTF8.GetString(bytes.ToArray()).TrimEnd('\r');
                bytes.Add((byte)b);
            }
        }
    }
}
