"""What both images share, without PySpark: lake layout, storage, steps, platform names, the raw
format and its rules, the manifest of raw files, and the command-line conventions."""
