"""Builds a large corpus on disk from the Gutenberg training text, for the streaming `prepare`
benchmark: the 159 books repeated with seeded perturbations (each copy shuffles the books and
swaps a seeded sample of words for other words of the corpus), as plain text (books separated by
four newlines), as Parquet (one book per row, snappy, as Hugging Face datasets are published),
or both. Memory: one copy of the source (~50 MB) at a time.

    python3 make_corpus.py SOURCE.txt OUT_PREFIX GIGABYTES [--parquet]
"""
import random
import sys

SEP = "\n\n\n\n"


def copies(books, total_bytes, seed):
    words = " ".join(books[:20]).split()
    done, k = 0, 0
    while done < total_bytes:
        rng = random.Random(seed * 1_000_003 + k)
        order = list(range(len(books)))
        rng.shuffle(order)
        for i in order:
            b = books[i].split(" ")
            for _ in range(len(b) // 50):
                b[rng.randrange(len(b))] = rng.choice(words)
            # A book ending in a newline would lose it to the separator that follows (the
            # text's first "\n\n\n\n" would start there), and differ from its Parquet row.
            text = " ".join(b).rstrip("\n")
            done += len(text.encode()) + len(SEP)
            yield text
            if done >= total_bytes:
                return
        k += 1


def main():
    src, prefix, gigabytes = sys.argv[1], sys.argv[2], float(sys.argv[3])
    parquet = "--parquet" in sys.argv[4:]
    books = [b for b in open(src, encoding="utf-8").read().split(SEP) if b.strip()]
    total = int(gigabytes * 1e9)
    if parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer, rows = None, []
        for text in copies(books, total, 1):
            rows.append(text)
            if len(rows) == 64:
                t = pa.table({"text": rows})
                writer = writer or pq.ParquetWriter(prefix + ".parquet", t.schema, compression="snappy")
                writer.write_table(t)
                rows = []
        if rows:
            t = pa.table({"text": rows})
            writer = writer or pq.ParquetWriter(prefix + ".parquet", t.schema, compression="snappy")
            writer.write_table(t)
        writer.close()
    else:
        with open(prefix + ".txt", "w", encoding="utf-8") as f:
            first = True
            for text in copies(books, total, 1):
                if not first:
                    f.write(SEP)
                f.write(text)
                first = False


main()
