"""python -m tinymtl.export: write a trained model in a format other frameworks read.

    python -m tinymtl.export --model model.npz --format safetensors model.safetensors
    python -m tinymtl.export --model model.safetensors --format npz model.npz

safetensors tensors follow PyTorch's ``torch.nn.Linear``: ``trunk.{i}.weight`` (out, in) and
``trunk.{i}.bias`` for the i-th dense layer of the trunk, ``heads.{task}.weight`` and
``heads.{task}.bias`` for each task; the model's metadata (features and their encoding, classes,
target scaling) is JSON in the header's ``__metadata__["tinymtl"]``, so the exported file is still
a complete model for predict, evaluate and ``train --from``. The output is written atomically.
"""

import sys

from . import checkpoint, cli
from .errors import CheckpointError, OptionError
from .model import KIND, Model
from .network import MultiTaskNet

FORMATS = {".safetensors": "safetensors", ".npz": "npz"}


def build_parser():
    parser = cli.Parser(
        prog="python -m tinymtl.export",
        description="Convert a tinymtl model file to safetensors (for PyTorch and others) or npz.",
        epilog="Example: python -m tinymtl.export --model model.npz --format safetensors "
               "model.safetensors")
    parser.add_argument("--model", metavar="PATH", default="model.npz",
                        help="model written by tinymtl.train or tinymtl.export, or a network "
                             "saved by MultiTaskNet.save (npz or safetensors, by content)")
    parser.add_argument("--format", choices=sorted(set(FORMATS.values())),
                        help="output format (default: from OUT's suffix)")
    parser.add_argument("out", metavar="OUT", help="file to write (replaced atomically; untouched on error)")
    return parser


def output_format(args):
    """The format to write: --format, which must agree with OUT's suffix when it has a known one."""
    suffix = next((s for s in FORMATS if args.out.lower().endswith(s)), None)  # .NPZ too
    if args.format is None:
        if suffix is None:
            raise OptionError(f"cannot tell the format from {args.out!r}: give --format "
                              f"{' or '.join(sorted(set(FORMATS.values())))}")
        return FORMATS[suffix]
    if suffix is not None and FORMATS[suffix] != args.format:
        raise OptionError(f"--format {args.format} does not match the file name {args.out!r} "
                          f"(a {suffix} file); change one of them")
    return args.format


def export(args, *, stdout=None):
    stdout = stdout or sys.stdout
    fmt = output_format(args)
    cli.check_distinct_files([("OUT", args.out)], [("--model", args.model)])
    arrays, meta = checkpoint.load_contents(args.model)
    if meta is None:
        raise CheckpointError(f"{args.model}: a safetensors file without tinymtl metadata; load it "
                              f"with MultiTaskNet.load(path, heads={{...}}) in Python instead")
    if meta.get("kind") == KIND:
        model = Model.from_file_contents(arrays, meta, args.model)
        (model.save_safetensors if fmt == "safetensors" else model.save)(args.out)
        network = model.network
    else:  # a bare network (MultiTaskNet.save): its parameters and architecture only
        network = MultiTaskNet.load(args.model)
        if fmt == "safetensors":
            checkpoint.save_safetensors(network, args.out)
        else:
            checkpoint.save_network(network, args.out)
    tensors = checkpoint.to_torch_layout(network) if fmt == "safetensors" else network.parameters()
    print(f"wrote {args.out} ({fmt}): {len(tensors)} tensors", file=stdout)
    for name, array in tensors.items():
        print(f"  {name} {tuple(array.shape)} {array.dtype}", file=stdout)


def main(argv=None):
    return cli.run(build_parser(), argv, export)


if __name__ == "__main__":
    sys.exit(main())
