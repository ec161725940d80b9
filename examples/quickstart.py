"""igt from Python in a minute: train IGT-N on a slice of the built-in BBBP set, predict new
molecules, explain them atom by atom and save a picture of a rationale.

    python examples/quickstart.py      # ~15 s on one CPU thread; writes runs/quickstart/

The code between the markers is the README's "From Python" snippet (a test checks they agree and
runs this file). Three epochs on 400 molecules show the
plumbing, not a good model: scores stay close together. A real run uses the whole set and more epochs (`igt train bbbp --model igt-n`).
"""

# --- README snippet ---
import igt

run = igt.fit("bbbp", model="igt-n", epochs=3, data={"limit": 400}, backbone={"name": "gin"},
                out="runs/quickstart", overwrite=True)
print(run)  # test ROC-AUC: run.metrics["test"]; the full config: run.config
print(run.predict(["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"]))
atoms = run.explain_frame("CC(=O)Oc1ccccc1C(=O)O")  # one row per atom: element, rationale score
print(atoms.sort_values("score", ascending=False).head(5))
run.draw("CC(=O)Oc1ccccc1C(=O)O").save("runs/quickstart/aspirin.png")  # atoms shaded by score
# --- end of README snippet ---

# The same rationale as a PyTorch Geometric Explanation (node_mask = atom scores), for PyG's tools.
explanation = run.explain("CC(=O)Oc1ccccc1C(=O)O")[0]
print(explanation)
print("three highest-scored atoms:", explanation.node_mask.view(-1).topk(3).indices.tolist())

# A run folder reloads later, from Python or the command line (igt predict runs/quickstart ...).
again = igt.load_run("runs/quickstart")
assert again.predict("CCO")["p_np"].round(6).equals(run.predict("CCO")["p_np"].round(6))
print("wrote runs/quickstart/ and runs/quickstart/aspirin.png")
