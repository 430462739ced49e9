namespace XlstmRun.Text.Sampling;

/// <summary>
/// The tokens still in the running while the sampler chain narrows them down: ids with their (modified) logits.
/// When <see cref="Sorted"/> is true they are in descending logit order (ties: lower id first).
/// </summary>
public sealed class Candidates
{
    private int[] _ids;
    private float[] _logits;

    public Candidates(int capacity = 0)
    {
        _ids = new int[capacity];
        _logits = new float[capacity];
    }

    public int Count { get; private set; }
    public bool Sorted { get; private set; }
    public ReadOnlySpan<int> Ids => _ids.AsSpan(0, Count);
    public Span<float> Logits => _logits.AsSpan(0, Count);

    /// <summary>All ids 0..logits.Length-1 with their logits, unsorted.</summary>
    public void Fill(ReadOnlySpan<float> logits)
    {
        Ensure(logits.Length);
        for (int i = 0; i < logits.Length; i++) _ids[i] = i;
        logits.CopyTo(_logits);
        Count = logits.Length;
        Sorted = false;
    }

    /// <summary>Explicit (id, logit) pairs, unsorted (for tests and callers with their own candidate lists).</summary>
    public void Set(ReadOnlySpan<int> ids, ReadOnlySpan<float> logits)
    {
        if (ids.Length != logits.Length) throw new ArgumentException("ids and logits differ in length");
        Ensure(ids.Length);
        ids.CopyTo(_ids);
        logits.CopyTo(_logits);
        Count = ids.Length;
        Sorted = false;
    }

    private void Ensure(int n)
    {
        if (_ids.Length < n)
        {
            _ids = new int[n];
            _logits = new float[n];
        }
    }

    /// <summary>Keeps the first <paramref name="n"/> candidates.</summary>
    public void Truncate(int n)
    {
        if (n < Count) Count = Math.Max(0, n);
    }

    /// <summary>Keeps the candidates for which <paramref name="keep"/> is true, in order.</summary>
    public void Filter(Func<float, bool> keep)
    {
        int w = 0;
        for (int r = 0; r < Count; r++)
        {
            if (!keep(_logits[r])) continue;
            _ids[w] = _ids[r];
            _logits[w] = _logits[r];
            w++;
        }
        Count = w;
    }

    /// <summary>Sorts by descending logit, lower id first on ties.</summary>
    public void Sort()
    {
        if (Sorted) return;
        var idx = new int[Count];
        for (int i = 0; i < idx.Length; i++) idx[i] = i;
        var ids = _ids;
        var lg = _logits;
        Array.Sort(idx, (a, b) =>
        {
            int c = lg[b].CompareTo(lg[a]);
            return c != 0 ? c : ids[a].CompareTo(ids[b]);
        });
        var ni = new int[Count];
        var nl = new float[Count];
        for (int i = 0; i < idx.Length; i++)
        {
            ni[i] = ids[idx[i]];
            nl[i] = lg[idx[i]];
        }
        ni.CopyTo(_ids, 0);
        nl.CopyTo(_logits, 0);
        Sorted = true;
    }

    /// <summary>
    /// Keeps the <paramref name="k"/> largest, sorted, in O(n log k) (a bounded min-heap) instead of sorting everything.
    /// </summary>
    public void SelectTop(int k)
    {
        if (k >= Count)
        {
            Sort();
            return;
        }
        if (k <= 0)
        {
            Count = 0;
            Sorted = true;
            return;
        }
        // heap of candidate positions; the root is the "worst" kept (lowest logit, highest id on ties)
        var heap = new int[k];
        var lg = _logits;
        var ids = _ids;
        bool Worse(int a, int b) => lg[a] < lg[b] || (lg[a] == lg[b] && ids[a] > ids[b]);
        int size = 0;
        void SiftUp(int i)
        {
            while (i > 0)
            {
                int p = (i - 1) / 2;
                if (!Worse(heap[i], heap[p])) break;
                (heap[i], heap[p]) = (heap[p], heap[i]);
                i = p;
            }
        }
        void SiftDown(int i)
        {
            while (true)
            {
                int l = 2 * i + 1, r = l + 1, m = i;
                if (l < size && Worse(heap[l], heap[m])) m = l;
                if (r < size && Worse(heap[r], heap[m])) m = r;
                if (m == i) break;
                (heap[i], heap[m]) = (heap[m], heap[i]);
                i = m;
            }
        }
        for (int i = 0; i < Count; i++)
        {
            if (float.IsNaN(lg[i])) continue;
            if (size < k)
            {
                heap[size++] = i;
                SiftUp(size - 1);
            }
            else if (Worse(heap[0], i))
            {
                heap[0] = i;
                SiftDown(0);
            }
        }
        var ni = new int[size];
        var nl = new float[size];
        for (int i = 0; i < size; i++)
        {
            ni[i] = ids[heap[i]];
            nl[i] = lg[heap[i]];
        }
        ni.CopyTo(_ids, 0);
        nl.CopyTo(_logits, 0);
        Count = size;
        Sorted = false;
        Sort();
    }

    /// <summary>Softmax of the current logits (double precision accumulation).</summary>
    public double[] Probabilities()
    {
        var p = new double[Count];
        if (Count == 0) return p;
        float max = float.NegativeInfinity;
        for (int i = 0; i < Count; i++) if (_logits[i] > max) max = _logits[i];
        double sum = 0;
        for (int i = 0; i < Count; i++)
        {
            p[i] = float.IsNegativeInfinity(_logits[i]) ? 0 : Math.Exp((double)_logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < Count; i++) p[i] /= sum;
        return p;
    }
}
