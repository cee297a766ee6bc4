"""Explanation monitoring: does a new or retrained version still look at what the old one looked at?

For every model version whose model.toml has a `[monitoring.explanations]` table the monitor checks, on
the robustness monitor's schedule and on every new version, the methods listed there on the model's
reference set: localisation (where the set has object masks, and in named regions such as a corner
where a watermark could sit), faithfulness (deletion and insertion AUC, the evaluation job's
definitions) and stability against the previous version and a pinned baseline version (Spearman, SSIM,
top-k% overlap of the maps, prediction agreement). Each method gets a verdict from the thresholds of the
table. See docs/monitoring.md.
"""
