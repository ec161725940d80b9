"""Explanations a person can read: per-atom rationale scores, pictures and an HTML report.

``igt explain`` (and :func:`explain_smiles` / :func:`explain_split` + :func:`write_report`)
writes into one folder:

* ``rationale.csv``: one row per atom (``molecule_id, smiles, atom_index, element, score``,
  plus ``ground_truth`` when the data has ground-truth rationales);
* ``rationale.json``: per molecule its prediction, label, error, rationale size, atom scores and
  rationale fragment;
* ``fragments.csv``: per molecule the rationale as a substructure (fragment SMILES and SMARTS,
  largest connected piece; :mod:`igt.explain.fragments`);
* ``fragment_summary.csv``: the largest-piece fragments ranked by how many molecules have them,
  with counts among predicted positives and negatives and the mean prediction;
* ``images/mol-<k>.png`` and ``.svg``: the molecule with atoms and bonds shaded by score;
* ``index.html``: a self-contained report, one card per molecule (see :mod:`igt.explain.report`).

Definitions used throughout:

* **rationale size**: the fraction of a molecule's atoms whose score is above
  :data:`RATIONALE_THRESHOLD` (0.5), i.e. the atoms the model keeps as its reason;
* **error** (only where the label is known): binary tasks, the mean over observed labels of
  ``|p - y|``; regression, the mean ``|prediction - y|``; multiclass, ``1 - p(true class)``.

**Ensembles** (several runs, e.g. the seeds of one model; :func:`igt.predict.load_ensemble`):
every function here that takes a model also takes a list of them. Predictions, atom and edge
scores are then the runs' means (the mean drives the shading, the rationale size and the
fragments), and ``prediction_std`` / ``node_scores_std`` hold the sample standard deviations
(``rationale.csv`` gains ``score_std``; the report shows ``±`` and sorts by spread). With
``--split``, the molecules are the split of the first run's data.

Methods without node scores (ERM backbones) are explained without a rationale: the report says
so and the ``score`` column is empty. We deliberately do not substitute a gradient saliency map,
which would measure something else (sensitivity, not the model's own selection) and would be
read as if it were a rationale.
"""


from igt.explain.outputs import (REPORT_FILES, ExplainReport, draw_pictures, explanation_record, prepare_report_dir,
                                 write_rationale_csv, write_report)
from igt.explain.rationale import (RATIONALE_THRESHOLD, GraphExplanation, combine_explanations, explain_dataset,
                                   explain_smiles, explain_split)

__all__ = [
    "RATIONALE_THRESHOLD", "REPORT_FILES", "GraphExplanation", "ExplainReport", "explain_smiles", "explain_split",
    "explain_dataset", "combine_explanations", "write_report", "draw_pictures", "write_rationale_csv",
    "explanation_record", "prepare_report_dir",
]
