"""``sknn export``: its options, and writing a saved model as ONNX or .sknn."""

import sys

from sknn.cli.errors import InputError
from sknn.cli.models import check_out_path, load_model, save_model


def add_parser(subparsers):
    """Add ``sknn export`` and its options to the ``sknn`` parser."""
    export = subparsers.add_parser(
        "export", help="write a saved model as ONNX or as a .sknn file",
        description="Convert a model saved by 'sknn train' to ONNX (one graph "
                    "for the whole Pipeline: 2-D float32 rows in, the labels "
                    "and an (N, n_classes) probability tensor out, and in its "
                    "metadata what 'sknn predict' needs to read images and CSV "
                    "files for it) and/or to the pickle-free .sknn format. "
                    "Needs sknn[deploy]. The ONNX file is the one sknn.to_onnx "
                    "makes in Python.")
    export.add_argument("--model", required=True, metavar="PATH",
                        help="a .joblib or .sknn model")
    export.add_argument("--onnx", metavar="PATH", help="write an .onnx file here")
    export.add_argument("--sknn", metavar="PATH", help="write a .sknn file here")
    export.set_defaults(func=run)


def _refuse_text_columns(spec, args):
    """Neither format holds the one-hot encoder of a table with text columns."""
    if spec["kind"] == "table" and spec["text"]:
        option = "--onnx" if args.onnx else "--sknn"
        raise InputError(
            f"{option}: this model one-hot encodes the text columns "
            f"{spec['text'][:5]}, an encoder that neither ONNX nor the .sknn "
            f"format holds; keep the .joblib file {args.model!r}")


def run(args, out=None):
    """Run ``sknn export`` with parsed arguments; returns the exit status."""
    from sknn._onnx_runtime import OnnxModel
    from sknn._pipeline import input_spec

    out = sys.stdout if out is None else out
    if not args.onnx and not args.sknn:
        raise InputError("give --onnx PATH and/or --sknn PATH")
    if args.onnx:
        check_out_path(args.onnx, "--onnx", (".onnx",))
    if args.sknn:
        check_out_path(args.sknn, "--sknn", (".sknn",))
    model = load_model(args.model)
    if isinstance(model, OnnxModel):
        raise InputError(f"--model {args.model!r} is already an ONNX file; export "
                         "from the .joblib or .sknn model")
    _refuse_text_columns(input_spec(model), args)
    if args.sknn:
        save_model(model, args.sknn)
        print(f"Saved {args.sknn} (sknn.save: JSON and safetensors, no pickle)",
              file=out)
    if args.onnx:
        from sknn._onnx import to_onnx
        from sknn._persistence import atomic_write

        try:
            onx = to_onnx(model)
        except (TypeError, NotImplementedError) as exc:
            # what the graph cannot express: a refusal, not a bug
            raise InputError(f"--onnx: {exc}") from exc
        atomic_write(args.onnx, lambda f: f.write(onx.SerializeToString()))
        graph_input = onx.graph.input[0]
        width = graph_input.type.tensor_type.shape.dim[1].dim_value
        print(f"Saved {args.onnx}: input {graph_input.name!r} (rows of "
              f"{width} values), outputs {[o.name for o in onx.graph.output]}",
              file=out)
    return 0
