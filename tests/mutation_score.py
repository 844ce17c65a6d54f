"""The mutation score of each mutated module, from the results `mutmut run` left in mutants/ (`make mutation`).

A mutant counts as killed when a test failed or crashed on it, or the tests ran past mutmut's time limit (shown
apart); as surviving when every test passed or no test reached it. Mutants that change only a docstring are listed
apart and not counted: no result can catch them. Prints one row per module and the surviving mutants (see one with
`mutmut show NAME`)."""
import argparse
import ast
import fnmatch
import json
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "simsiam_collapse"
# What `make mutation` mutates: of the data, what decides which images a run sees and how they are scaled (the splits,
# E2's class-balanced subsets, the loaders' statistics and sizes, the streaming rule; not `batch` and `batches`, whose
# two classes' functions share mutmut's mutant names, so a result would not say which one a mutant changed, nor `fake`,
# the tests' own data); the two-view augmentations and the backbones, the metric and the label-free measures, the
# optimisers, the evaluation (feature extraction, kNN, linear probes: the accuracies every claim rests on), the
# orderings and the methods whole (their figures aside: a wrong label changes no number); of training the step itself
# (model, optimiser, learning rate, views, the epoch loop); and the claims' statistics and rules whole, at one dose
# (claims, rules) and on the phase diagram (phases); what decides which run a number comes from (config, runs,
# experiments, runner: which runs train, in which order, measured how, cached when); the report and the comparison of
# two reproductions (report: not its HTML rendering or figures); the monitor, the theory and the resizing; of the
# command line what reaches a run or a notebook (cli: which notebooks run in which order, their parameters, the first
# pass's runs, a flag's value reaching `TrainConfig` and `train`; not its messages, which its tests read); the paper's
# numbers beside ours (paper, scales: Table 1's accuracy by backbone, E2's paper AUC column, the settings side by side,
# the scales' table). Functions
# under `@patch`, `@property`, `@torch.no_grad()` and `@contextlib.contextmanager` too: mutmut_run.py.
TARGETS = {"datasets": {"ImageDataset.__post_init__", "_stratified_split", "class_balanced_subset", "_mnist5k_arrays",
                        "_load_mnist5k", "_load_digits", "read_image", "image_sizes",
                        "_FolderImages.__getitem__", "_streams", "_load_imagefolder", "_load_cifar"},
           "augment": None, "models": None, "collapse": None, "measures": None, "optim": None, "evaluate": None,
           "orderings": None, "methods": None,
           "train": {"build_model", "build_optimizer", "set_learning_rate", "_views", "train_epoch", "probe_sets",
                     "monitor", "TrainingData.load", "TrainingData.image_batches", "channels_last_is_safe",
                     "_already_finished", "_init_from_single_pass", "_write_run_files", "Training.__post_init__",
                     "_restore", "_end_epoch", "train"},
           "claims": None, "rules": None, "phases": None,
           "basics": {"resize_center_crop", "resize_center_crop_image", "squash"}, "monitor": None,
           "config": {"field_kind", "validate", "resolved", "key", "_chunk_edges_moved",
                      "_subset_size_moved", "canonical", "run_name", "resolve_precision", "from_dict"},
           "runs": {"checkpoint_path", "checkpoint_epochs", "last_checkpoint", "load_latest_checkpoint",
                    "prune_checkpoints", "read_metrics", "run_status", "RunFolder.checkpoint"},
           "theory": None,
           "experiments": {"Experiment.__init__", "Experiment._resolve_dataset", "config", "run", "run_many",
                           "finished", "judge", "claim", "table_cell", "_conforms", "_check_limits",
                           "check_parameters"},
           "runner": None,
           "report": {"markdown_title", "experiment_title", "experiment_order", "claim_verdicts", "machine_line",
                      "runs_table", "write_runs_csv", "claims_section", "write_report", "publish_results", "run_rows",
                      "compare_runs", "_recorded_claims", "compare_claims", "compare_reproductions"},
           "cli": {"experiments_dir", "experiment_notebooks", "_train_named_runs", "reproduce", "_reproduce_locked",
                   "_value_parser", "_add_config_arguments", "_train_command", "_reproduce_command"},
           "paper": {"paper_accuracy"}, "scales": {"paper_auc_cell", "settings_table", "scale_table"}}
NOT_SCIENCE = ("plot_", "save_figure")

KILLED = {1, 3, -9, -11}  # a test failed, pytest's internal error, killed by a signal
TIMED_OUT = {24, -24, 36, 152, 255}  # past mutmut's time limit: counted as caught, shown apart
SURVIVED = {0}
NO_TESTS = {5, 33}


def module_results(meta: Path) -> dict:
    "{mutant name: exit code} of one module's `.meta` file."
    return json.loads(meta.read_text())["exit_code_by_key"]


def _without_docstring(fn: ast.FunctionDef) -> str:
    "The function's code with its docstring and name left out, as an AST dump."
    body = fn.body[1:] if ast.get_docstring(fn, clean=False) is not None else fn.body
    return ast.dump(ast.Module(body=body, type_ignores=[])) + ast.dump(fn.args)


def docstring_mutants(mutated_module: Path) -> set[str]:
    """Mutants that change only a docstring (no result can tell them apart), found by comparing each mutant function
    of mutmut's copy of the module with its `__mutmut_orig`."""
    functions = {n.name: n for n in ast.walk(ast.parse(mutated_module.read_text())) if isinstance(n, ast.FunctionDef)}
    out = set()
    for name, fn in functions.items():
        stem, _, number = name.rpartition("__mutmut_")
        orig = functions.get(f"{stem}__mutmut_orig")
        if not number.isdigit() or orig is None: continue
        if _without_docstring(fn) == _without_docstring(orig) and ast.get_docstring(fn) != ast.get_docstring(orig):
            out.add(name)
    return out


def tally(results: dict, docstrings: set) -> Counter:
    "Killed / survived / no tests / not checked / docstring-only counts of a module's {mutant: exit code}."
    c = Counter()
    for name, code in results.items():
        if name.rpartition(".")[2] in docstrings: c["docstring"] += 1
        else:
            c["killed" if code in KILLED else "timed out" if code in TIMED_OUT else "survived" if code in SURVIVED
              else "no tests" if code in NO_TESTS else "not checked"] += 1
    return c


def target_functions() -> list[tuple[str, str, ast.FunctionDef]]:
    "(module, mutmut's mangled name, function) of each function the TARGETS mutate."
    out = []
    for module, only in TARGETS.items():
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions = [(node.name, f"x_{node.name}", node)]
            elif isinstance(node, ast.ClassDef):
                functions = [(f"{node.name}.{f.name}", f"x\u01c1{node.name}\u01c1{f.name}", f) for f in node.body
                             if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
            else: continue
            out += [(module, mangled, fn) for name, mangled, fn in functions
                    if not name.startswith(NOT_SCIENCE) and (only is None or name in only)]
    return out


def mutant_patterns() -> list[str]:
    "mutmut name patterns (`module.x_function__mutmut_*`, `module.xǁClassǁmethod__mutmut_*`) of the TARGETS."
    return [f"simsiam_collapse.{module}.{mangled}__mutmut_*" for module, mangled, _ in target_functions()]


def _code(fn) -> str:
    "A function's arguments and body as an AST dump: equal for the package's function and mutmut's copy of it."
    return ast.dump(fn.args) + ast.dump(ast.Module(body=fn.body, type_ignores=[]))


def pending(modules=(), mutants="mutants") -> list[str]:
    """What `make mutation` still has to run, so that a stopped pass resumes (mutmut re-runs every mutant it is given by
    name): each mutant of the `modules`' targets without a result, and the pattern of a whole function when it changed
    since mutmut copied it (mutmut then makes its mutants anew). Every pattern before the first run."""
    out = []
    for module, mangled, fn in target_functions():
        if modules and module not in modules: continue
        pattern = f"simsiam_collapse.{module}.{mangled}__mutmut_*"
        copy = Path(mutants) / "simsiam_collapse" / f"{module}.py"
        meta = copy.with_suffix(".py.meta")
        if not (meta.exists() and copy.exists()): out.append(pattern); continue
        copies = {n.name: n for n in ast.walk(ast.parse(copy.read_text())) if isinstance(n, ast.FunctionDef)}
        orig = copies.get(f"{mangled}__mutmut_orig")
        results = {k: v for k, v in module_results(meta).items() if fnmatch.fnmatch(k, pattern)}
        if orig is None or _code(orig) != _code(fn) or not results: out.append(pattern)
        else: out += sorted(k for k, v in results.items() if v is None)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutants", default="mutants", help="mutmut's folder (default: %(default)s)")
    p.add_argument("--survivors", action="store_true", help="list every surviving mutant")
    p.add_argument("--targets", nargs="*", metavar="MODULE", default=None,
                   help="print the mutant patterns of the targets (of the MODULEs named, else all), and stop")
    p.add_argument("--pending", nargs="*", metavar="MODULE", default=None,
                   help="print what `make mutation` has still to run (of the MODULEs named, else all), and stop")
    args = p.parse_args(argv)
    if args.pending is not None:
        unknown = sorted(set(args.pending) - set(TARGETS))
        if unknown: p.error(f"unknown module(s) {', '.join(unknown)}; valid: {', '.join(TARGETS)}")
        return print(" ".join(pending(args.pending, args.mutants)))
    if args.targets is not None:
        unknown = sorted(set(args.targets) - set(TARGETS))
        if unknown: p.error(f"unknown module(s) {', '.join(unknown)}; valid: {', '.join(TARGETS)}")
        return print(" ".join(m for m in mutant_patterns() if not args.targets or m.split(".")[1] in args.targets))
    metas = sorted(Path(args.mutants).rglob("*.py.meta"))
    if not metas: raise SystemExit(f"No mutmut results under {args.mutants}/: run `make mutation` first.")
    print("| module | mutants | docstring only (not counted) | killed | timed out | survived | no test reached "
          "| not yet run | score |")
    print("|---|---|---|---|---|---|---|---|---|")
    survivors, patterns = [], mutant_patterns()
    for meta in metas:
        results = {k: v for k, v in module_results(meta).items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
        docstrings = docstring_mutants(meta.with_suffix(""))
        c = tally(results, docstrings)
        decided = c["killed"] + c["timed out"] + c["survived"] + c["no tests"]
        score = f"{100 * (c['killed'] + c['timed out']) / decided:.0f} %" if decided else "-"
        name = meta.name.removesuffix(".py.meta")
        kinds = ("docstring", "killed", "timed out", "survived", "no tests", "not checked")
        counts = " | ".join(str(c[k]) for k in kinds)
        print(f"| {name} | {len(results)} | {counts} | {score} |")
        survivors += [k for k, v in results.items()
                      if v in SURVIVED | NO_TESTS and k.rpartition(".")[2] not in docstrings]
    if args.survivors: print("\nSurviving mutants:\n" + "\n".join(f"- {s}" for s in survivors))


if __name__ == "__main__":
    main()
