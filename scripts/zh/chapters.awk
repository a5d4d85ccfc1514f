# Chapters of a novel (a line starting 第…回; a heading repeated on the next line is one chapter):
# every 20th chapter goes to the held-out file, the rest (and any text before chapter one) to train.
{
  if (match($0, /^[[:space:]　]*第[一二三四五六七八九十百零〇]+回/)) {
    key = substr($0, RSTART, RLENGTH); sub(/^[[:space:]　]*/, "", key)
    if (key != current) { current = key; n++ }
  }
  if (n > 0 && n % 20 == 0) print > held; else print > train
}
