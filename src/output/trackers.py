"""rubric's experiment trackers (src/output/trackers.rs runs this file as `python -c SCRIPT`).

One JSON job on stdin, one JSON reply on stdout; everything the trackers print goes to stderr.
Jobs:
  {"op": "check", "wandb_args": [..], "wandb_config_args": [..], "trackio_args": [..],
   "tensorboard": DIR or null, "sweep": bool}
      parse the args as lm-eval 0.4.13 parses them and import the packages the flags need;
  {"op": "log", ...the same..., "runs": [{"step": int or null, "label": str,
   "results": {results JSON}, "samples": {task: samples_<task>_<time>.jsonl}}]}
      log every run (a sweep's checkpoints, each at its step).
Replies: {"ok": {...}}, {"missing": {"package", "flag", "why"}}, {"usage": "..."}, or
{"error": {"tracker", "message", "traceback"}}.

W&B and Trackio are logged as lm-eval 0.4.13's WandbLogger and TrackioLogger log them
(lm_eval/loggers/wandb_logger.py, trackio_logger.py; copied below, and marked where rubric
differs): the samples files hold lm-eval's saved form of a sample (`arguments` as
{"gen_args_i": {"arg_j": ..}}, responses as strings), which is turned back into the in-memory
form lm-eval's loggers read. TensorBoard gets one scalar per `metric,filter` value per step.
"""

import ast
import copy
import json
import os
import re
import sys
import time
import traceback

PACKAGES = {
    "wandb": ("--wandb-args", "wandb"),
    "trackio": ("--trackio-args", "trackio"),
    "tensorboard": ("--tensorboard", "tensorboard"),
}


# --- lm-eval 0.4.13's lm_eval/_cli/utils.py: how `--wandb_args` values are read ---------------


def handle_cli_value_string(arg):
    if arg.lower() == "true":
        return True
    elif arg.lower() == "false":
        return False
    elif arg.isnumeric():
        return int(arg)
    try:
        return float(arg)
    except ValueError:
        try:
            return ast.literal_eval(arg)
        except (ValueError, SyntaxError):
            return arg


def split_top_level(args):
    parts, buf, depth, quote = [], [], 0, None
    for char in args:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(char)
    parts.append("".join(buf))
    return [part for part in parts if part]


def key_val_to_dict(args):
    res = {}
    for item in split_top_level(args):
        if "=" not in item:
            raise ValueError(f"expected `key=value`, got {item!r}")
        k, v = item.split("=", 1)
        res[k] = handle_cli_value_string(v)
    return res


def merge_dict(values, flag):
    """MergeDictAction: one JSON object, or `key=value,...` words merged in order."""
    current = {}
    if not values:
        return current
    try:
        result = json.loads(values[0])
    except json.JSONDecodeError:
        if "{" in values[0]:
            raise ValueError(
                f"{flag}: invalid JSON: {values[0]} (use double quotes for JSON strings)"
            ) from None
        result = values[0]
    if isinstance(result, dict):
        return {**current, **result}
    for v in values:
        try:
            current.update(key_val_to_dict(v))
        except ValueError as e:
            raise ValueError(f"{flag}: {e}") from None
    return current


def remove_none_pattern(input_string):
    pattern = re.compile(r",none$")
    result = re.sub(pattern, "", input_string)
    return result, result != input_string


# --- the job ----------------------------------------------------------------------------------


class Usage(Exception):
    pass


def parsed(job):
    try:
        wandb_args = merge_dict(job.get("wandb_args"), "--wandb-args")
        wandb_config = merge_dict(job.get("wandb_config_args"), "--wandb-config-args")
        trackio_args = merge_dict(job.get("trackio_args"), "--trackio-args")
    except ValueError as e:
        raise Usage(str(e)) from None
    if job.get("sweep"):
        for flag, args in (("--wandb-args", wandb_args), ("--trackio-args", trackio_args)):
            if "step" in args:
                raise Usage(
                    f"{flag}: step= with a checkpoint sweep: each checkpoint is logged at its own step"
                )
    return wandb_args, wandb_config, trackio_args


def wanted(job):
    out = []
    if job.get("wandb_args"):
        out.append("wandb")
    if job.get("trackio_args"):
        out.append("trackio")
    if job.get("tensorboard"):
        out.append("tensorboard")
    return out


def check_init_args(name, module, args):
    """The arguments bind to the tracker's `init` (and W&B's `mode` is one it knows), so that a
    typo stops the run before the model works, not after."""
    import inspect

    flag = PACKAGES[name][0]
    kwargs = {k: v for k, v in args.items() if k != "step"}
    if name == "trackio":
        kwargs.setdefault("project", "lm-eval-harness")
    try:
        inspect.signature(module.init).bind(**kwargs)
    except TypeError as e:
        raise Usage(f"{flag}: {name}.init does not take these arguments: {e}") from None
    if name == "wandb" and "mode" in kwargs:
        try:
            module.Settings(mode=kwargs["mode"])
        except Exception as e:  # noqa: BLE001
            lines = str(e).splitlines() or [type(e).__name__]
            why = next((x.strip() for x in lines if "should be" in x), lines[-1].strip())
            raise Usage(f"{flag}: mode={kwargs['mode']}: {why.split(' [type=')[0]}") from None


def check(job):
    wandb_args, _, trackio_args = parsed(job)
    versions = {}
    for name in wanted(job):
        flag, package = PACKAGES[name]
        try:
            if name == "tensorboard":
                from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: F401
                import tensorboard as module
            else:
                module = __import__(name)
        except Exception as e:  # noqa: BLE001
            return {"missing": {"package": package, "flag": flag, "why": f"{type(e).__name__}: {e}"}}
        versions[name] = getattr(module, "__version__", "")
        if name in ("wandb", "trackio"):
            check_init_args(name, module, wandb_args if name == "wandb" else trackio_args)
        if name == "wandb":
            from packaging.version import Version

            if Version(module.__version__) < Version("0.13.6"):
                return {
                    "missing": {
                        "package": "wandb>=0.13.6",
                        "flag": flag,
                        "why": f"wandb {module.__version__} is older than lm-eval's minimum, 0.13.6",
                    }
                }
    if job.get("tensorboard"):
        try:
            os.makedirs(job["tensorboard"], exist_ok=True)
        except OSError as e:
            raise Usage(f"--tensorboard: cannot create {job['tensorboard']}: {e}") from None
    return {"ok": versions}


def read_samples(paths):
    out = {}
    for task, path in paths.items():
        with open(path, encoding="utf-8") as f:
            out[task] = [json.loads(line) for line in f if line.strip()]
    return out


def _ll(pair):
    """A saved (loglikelihood, is_greedy) pair: `["-1.5", "True"]`."""
    if isinstance(pair, (list, tuple)) and len(pair) == 2:
        a, b = pair
        return (float(a) if isinstance(a, str) else a, b == "True" if isinstance(b, str) else b)
    return pair


def in_memory(sample, output_type):
    """A samples-file line (lm-eval's saved form) as lm-eval's loggers see it in memory."""
    s = dict(sample)
    args = s.get("arguments")
    if isinstance(args, dict):
        s["arguments"] = [
            tuple(a[f"arg_{j}"] for j in range(len(a)))
            for a in (args[f"gen_args_{i}"] for i in range(len(args)))
        ]
    if output_type in ("loglikelihood", "multiple_choice"):
        s["resps"] = [[_ll(r) for r in req] for req in s.get("resps", [])]
        s["filtered_resps"] = [_ll(r) for r in s.get("filtered_resps", [])]
    elif output_type == "loglikelihood_rolling":
        num = lambda v: float(v) if isinstance(v, str) else v  # noqa: E731
        s["resps"] = [[num(r) for r in req] for req in s.get("resps", [])]
        s["filtered_resps"] = [num(r) for r in s.get("filtered_resps", [])]
    return s


def argmax(values):
    """numpy.argmax over a list: the first largest."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


# --- W&B: lm-eval 0.4.13's WandbLogger --------------------------------------------------------


class WandbLogger:
    def __init__(self, init_args, config_args):
        import wandb

        self.wandb_args = dict(init_args)
        self.wandb_config_args = dict(config_args)
        # pop the step key from the args to save for all logging calls
        self.step = self.wandb_args.pop("step", None)
        if wandb.run is None:
            self.run = wandb.init(**self.wandb_args)
            if self.wandb_config_args:
                self.run.config.update(self.wandb_config_args)
        else:
            self.run = wandb.run

    def post_init(self, results):
        self.results = copy.deepcopy(results)
        self.task_names = list(results.get("results", {}).keys())
        self.group_names = list(results.get("groups", {}).keys())

    def _get_config(self):
        self.task_configs = self.results.get("configs", {})
        return {"task_configs": self.task_configs, "cli_configs": self.results.get("config", {})}

    def _sanitize_results_dict(self):
        _results = copy.deepcopy(self.results.get("results", dict()))
        tmp_results = copy.deepcopy(_results)
        for task_name in self.task_names:
            task_result = tmp_results.get(task_name, dict())
            for metric_name, metric_value in task_result.items():
                _metric_name, removed = remove_none_pattern(metric_name)
                if removed:
                    _results[task_name][_metric_name] = metric_value
                    _results[task_name].pop(metric_name)
        wandb_summary = {}
        for task in self.task_names:
            task_result = _results.get(task, dict())
            for metric_name, metric_value in task_result.items():
                if isinstance(metric_value, str):
                    wandb_summary[f"{task}/{metric_name}"] = metric_value
        for summary_metric in wandb_summary:
            _task, _summary_metric = summary_metric.split("/")
            _results[_task].pop(_summary_metric)
        tmp_results = copy.deepcopy(_results)
        for task_name, task_results in tmp_results.items():
            for metric_name, metric_value in task_results.items():
                _results[f"{task_name}/{metric_name}"] = metric_value
                _results[task_name].pop(metric_name)
        for task in self.task_names:
            _results.pop(task)
        return wandb_summary, _results

    def _make_table(self, columns, key):
        import wandb

        table = wandb.Table(columns=columns)
        results = copy.deepcopy(self.results)
        versions = results.get("versions", {})
        n_shot = results.get("n-shot", {})
        for k, dic in results.get(key).items():
            if k in self.group_names and not key == "groups":
                continue
            version = versions.get(k)
            if version == "N/A":
                version = None
            n = n_shot.get(k)
            for mf, v in dic.items():
                m, _, f = mf.partition(",")
                if m.endswith("_stderr"):
                    continue
                if m == "alias":
                    continue
                if m + "_stderr" + "," + f in dic:
                    se = dic[m + "_stderr" + "," + f]
                    if se != "N/A":
                        se = "%.4f" % se
                    table.add_data(*[k, version, f, n, m, str(v), str(se)])
                else:
                    table.add_data(*[k, version, f, n, m, str(v), ""])
        return table

    def _log_results_as_table(self):
        columns = ["Version", "Filter", "num_fewshot", "Metric", "Value", "Stderr"]
        table = self._make_table(["Tasks"] + columns, "results")
        self.run.log({"evaluation/eval_results": table}, step=self.step)
        if "groups" in self.results.keys():
            table = self._make_table(["Groups"] + columns, "groups")
            self.run.log({"evaluation/group_eval_results": table}, step=self.step)

    def _log_json_artifact(self, name, kind, file_name, data):
        import wandb

        dumped = json.dumps(data, indent=2, default=str, ensure_ascii=False)
        artifact = wandb.Artifact(name, type=kind)
        with artifact.new_file(file_name, mode="w", encoding="utf-8") as f:
            f.write(dumped)
        self.run.log_artifact(artifact)

    def log_eval_result(self):
        configs = self._get_config()
        self.run.config.update(configs, allow_val_change=self.step is not None)
        wandb_summary, self.wandb_results = self._sanitize_results_dict()
        self.run.summary.update(wandb_summary)
        self.run.log(self.wandb_results, step=self.step)
        self._log_results_as_table()
        self._log_json_artifact("results", "eval_results", "results.json", self.results)

    def _generate_dataset(self, data, config):
        """lm-eval's table of a task's samples (a pandas DataFrame there: rubric builds the
        wandb.Table with the same columns and rows itself)."""
        ids = [x["doc_id"] for x in data]
        labels = [x["target"] for x in data]
        instance = [""] * len(ids)
        resps = [""] * len(ids)
        filtered_resps = [""] * len(ids)
        metrics = {}
        # rubric: a task without `metric_list` (its output type's default metrics) takes the
        # metric names its samples carry, where lm-eval's logger fails on it
        metric_list = config.get("metric_list") or [
            {"metric": m} for m in (data[0].get("metrics", []) if data else [])
        ]
        for metric in metric_list:
            metric = metric.get("metric")
            if data and metric not in data[0]:
                continue  # rubric: no value to show (--predict-only), where lm-eval's fails
            if metric in ["word_perplexity", "byte_perplexity", "bits_per_byte"]:
                metrics[f"{metric}_loglikelihood"] = [x[metric][0] for x in data]
                if metric in ["byte_perplexity", "bits_per_byte"]:
                    metrics[f"{metric}_bytes"] = [x[metric][1] for x in data]
                else:
                    metrics[f"{metric}_words"] = [x[metric][1] for x in data]
            else:
                metrics[metric] = [x[metric] for x in data]
        output_type = config["output_type"]
        choices = None
        if output_type == "loglikelihood":
            instance = [x["arguments"][0][0] for x in data]
            labels = [x["arguments"][0][1] for x in data]
            resps = [
                f"log probability of continuation is {x['resps'][0][0][0]} "
                + "\n\n"
                + "continuation will {} generated with greedy sampling".format(
                    "not be" if not x["resps"][0][0][1] else "be"
                )
                for x in data
            ]
            filtered_resps = [
                f"log probability of continuation is {x['filtered_resps'][0][0]} "
                + "\n\n"
                + "continuation will {} generated with greedy sampling".format(
                    "not be" if not x["filtered_resps"][0][1] else "be"
                )
                for x in data
            ]
        elif output_type == "multiple_choice":
            instance = [x["arguments"][0][0] for x in data]
            choices = [
                "\n".join([f"{idx}. {y[1]}" for idx, y in enumerate(x["arguments"])])
                for x in data
            ]
            resps = [argmax([n[0][0] for n in x["resps"]]) for x in data]
            filtered_resps = [argmax([n[0] for n in x["filtered_resps"]]) for x in data]
        elif output_type in ("loglikelihood_rolling", "generate_until"):
            instance = [x["arguments"][0][0] for x in data]
            resps = [x["resps"][0][0] for x in data]
            filtered_resps = [x["filtered_resps"][0] for x in data]
        columns = {"id": ids, "data": instance}
        if choices is not None:
            columns["choices"] = choices
        columns["input_len"] = [len(x) for x in instance]
        columns["labels"] = labels
        columns["output_type"] = [output_type] * len(ids)
        columns["raw_predictions"] = resps
        columns["filtered_predictions"] = filtered_resps
        columns.update(metrics)
        return columns

    @staticmethod
    def _table(columns):
        import wandb

        names = list(columns)
        rows = [list(r) for r in zip(*(columns[n] for n in names))]
        return wandb.Table(columns=names, data=rows)

    def log_eval_samples(self, samples):
        task_names = [x for x in self.task_names if x not in self.group_names]
        ungrouped_tasks = []
        tasks_by_groups = {}
        for task_name in task_names:
            if task_name not in samples:
                continue  # rubric: a group's entry in `results` has no samples
            group_names = self.task_configs[task_name].get("group", None)
            if group_names:
                if isinstance(group_names, str):
                    group_names = [group_names]
                for group_name in group_names:
                    tasks_by_groups.setdefault(group_name, []).append(task_name)
            else:
                ungrouped_tasks.append(task_name)
        for task_name in ungrouped_tasks:
            eval_preds = samples[task_name]
            columns = self._generate_dataset(eval_preds, self.task_configs.get(task_name))
            self.run.log({f"{task_name}_eval_results": self._table(columns)}, step=self.step)
            self._log_json_artifact(
                task_name, "samples_by_task", f"{task_name}_eval_samples.json", eval_preds
            )
        for group, grouped_tasks in tasks_by_groups.items():
            grouped = None
            for task_name in grouped_tasks:
                eval_preds = samples[task_name]
                columns = self._generate_dataset(eval_preds, self.task_configs.get(task_name))
                columns["group"] = [group] * len(eval_preds)
                columns["task"] = [task_name] * len(eval_preds)
                grouped = columns if grouped is None else concat(grouped, columns)
                self._log_json_artifact(
                    task_name, "samples_by_task", f"{task_name}_eval_samples.json", eval_preds
                )
            self.run.log({f"{group}_eval_results": self._table(grouped)}, step=self.step)


def concat(a, b):
    """pandas.concat of two column dicts: the union of the columns, missing cells None (NaN)."""
    n_a, n_b = len(next(iter(a.values()))), len(next(iter(b.values())))
    out = {}
    for name in list(a) + [c for c in b if c not in a]:
        out[name] = list(a.get(name, [None] * n_a)) + list(b.get(name, [None] * n_b))
    return out


# --- Trackio: lm-eval 0.4.13's TrackioLogger --------------------------------------------------


def sample_to_trace(trackio, sample, task_name, output_type):
    prompt = ""
    response = ""
    args = sample.get("arguments") or {}
    first = args.get("arg_0", {}) if isinstance(args, dict) else (args[0] if args else {})
    prompt = first.get("arg_0", "") if isinstance(first, dict) else (first[0] if first else "")
    if output_type == "loglikelihood":
        filt = sample.get("filtered_resps")
        if filt:
            logprob, is_greedy = filt[0] if isinstance(filt[0], (list, tuple)) else (filt[0], None)
            response = f"continuation log-prob: {logprob}" + (
                f"\n\ngreedy={bool(is_greedy)}" if is_greedy is not None else ""
            )
    elif output_type == "multiple_choice":
        filt = sample.get("filtered_resps") or []
        try:
            choice_idx = int(argmax([n[0] if isinstance(n, (list, tuple)) else n for n in filt]))
            response = f"selected choice {choice_idx}"
        except Exception:  # noqa: BLE001
            response = str(filt)
    else:
        filt = sample.get("filtered_resps") or sample.get("resps") or []
        if filt:
            response = filt[0] if isinstance(filt[0], str) else str(filt[0])
    metadata = {
        "task": task_name,
        "doc_id": sample.get("doc_id"),
        "target": sample.get("target"),
        "filter": sample.get("filter"),
        "output_type": output_type,
    }
    for metric_name in sample.get("metrics", []) or []:
        if metric_name in sample:
            metadata[metric_name] = sample[metric_name]
    return trackio.Trace(
        messages=[
            {"role": "user", "content": str(prompt)},
            {"role": "assistant", "content": str(response)},
        ],
        metadata=metadata,
    )


class TrackioLogger:
    def __init__(self, init_args):
        import trackio

        self._trackio = trackio
        self.trackio_args = dict(init_args or {})
        self.step = self.trackio_args.pop("step", None)
        if "project" not in self.trackio_args:
            self.trackio_args["project"] = "lm-eval-harness"
        self.run = trackio.init(**self.trackio_args)

    def post_init(self, results):
        self.results = copy.deepcopy(results)
        self.task_names = list(results.get("results", {}).keys())
        self.group_names = list(results.get("groups", {}).keys())
        self.task_configs = self.results.get("configs", {})

    def log_eval_result(self):
        # (lm-eval logs a failing config update and goes on; rubric lets it fail the logging)
        self._trackio.config.update(
            {"task_configs": self.task_configs, "cli_configs": self.results.get("config", {})}
        )
        flat = {}
        for task_name, metrics in self.results.get("results", {}).items():
            if not isinstance(metrics, dict):
                continue
            for k, v in metrics.items():
                key, _ = remove_none_pattern(k)
                if isinstance(v, (int, float)):
                    flat[f"{task_name}/{key}"] = v
        if flat:
            self._trackio.log(flat, step=self.step)

    def log_eval_samples(self, samples):
        for task_name in self.task_names:
            if task_name in self.group_names or task_name not in samples:
                continue
            task_cfg = self.task_configs.get(task_name, {}) or {}
            output_type = task_cfg.get("output_type", "generate_until")
            for sample in samples[task_name]:
                trace = sample_to_trace(self._trackio, sample, task_name, output_type)
                self._trackio.log({f"{task_name}/sample": trace}, step=self.step)

    def finish(self):
        self._trackio.finish()


# --- TensorBoard ------------------------------------------------------------------------------


def tensorboard_scalars(results):
    """(tag, value) per `metric,filter` number of `results` (tasks and groups): the tag is
    `task/metric,filter`, `,none` dropped as in the W&B keys."""
    out = []
    for task, metrics in results.get("results", {}).items():
        for key, value in metrics.items():
            if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            out.append((f"{task}/{remove_none_pattern(key)[0]}", float(value)))
    return out


def log_tensorboard(logdir, runs):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(logdir)
    for run in runs:
        step = run["step"] if run["step"] is not None else 0
        values = [
            summary_pb2.Summary.Value(tag=tag, simple_value=value)
            for tag, value in tensorboard_scalars(run["results"])
        ]
        event = event_pb2.Event(
            wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)
        )
        writer.add_event(event)
    writer.close()
    return {"logdir": logdir}


# --- main -------------------------------------------------------------------------------------


def log(job):
    wandb_args, wandb_config, trackio_args = parsed(job)
    runs = job["runs"]
    done = {}
    tracker = "W&B"
    try:
        if job.get("wandb_args"):
            logger = WandbLogger(wandb_args, wandb_config)
            init_step = logger.step
            for run in runs:
                logger.step = run["step"] if job.get("sweep") else init_step
                logger.post_init(run["results"])
                logger.log_eval_result()
                if run["samples"]:
                    logger.log_eval_samples(samples_of(run))
            done["wandb"] = {"dir": os.path.dirname(logger.run.dir), "name": logger.run.name}
            logger.run.finish()
        tracker = "Trackio"
        if job.get("trackio_args"):
            logger = TrackioLogger(trackio_args)
            init_step = logger.step
            for run in runs:
                logger.step = run["step"] if job.get("sweep") else init_step
                logger.post_init(run["results"])
                logger.log_eval_result()
                if run["samples"]:
                    logger.log_eval_samples(samples_of(run))
            done["trackio"] = {"project": logger.trackio_args["project"]}
            logger.finish()
        tracker = "TensorBoard"
        if job.get("tensorboard"):
            done["tensorboard"] = log_tensorboard(job["tensorboard"], runs)
    except Exception as e:  # noqa: BLE001
        return {
            "error": {
                "tracker": tracker,
                "message": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
            }
        }
    return {"ok": done}


def samples_of(run):
    configs = run["results"].get("configs", {})
    out = {}
    for task, lines in read_samples(run["samples"]).items():
        output_type = configs.get(task, {}).get("output_type", "generate_until")
        out[task] = [in_memory(s, output_type) for s in lines]
    return out


def main():
    # the reply goes to the real stdout; whatever the trackers print (and their child
    # processes) goes to stderr
    reply_to = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    job = json.loads(sys.stdin.read())
    try:
        reply = check(job) if job["op"] == "check" else log(job)
    except Usage as e:
        reply = {"usage": str(e)}
    reply_to.write(json.dumps(reply) + "\n")
    reply_to.flush()


main()
