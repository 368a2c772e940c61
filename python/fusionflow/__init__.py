"""fusionflow from Python: run pipelines and exchange volumes with NumPy without copying.

    import fusionflow as ff
    pipeline = ff.Pipeline.load("examples/pipelines/pet_ct_mri_fusion.json")
    result = pipeline.run(variables={"out": "results"}, threads=2, outputs=["fused.volume"])
    fused = result.outputs["fused.volume"].array      # a NumPy view of the fused volume, no copy

The user's guide is docs/python.md.
"""

from ._core import (  # noqa: F401
    Cancelled,
    CancelToken,
    Geometry,
    Latent,
    LatentLevel,
    NodeContext,
    Payload,
    Pipeline,
    PipelineError,
    Problem,
    Registry,
    RunCancelled,
    RunError,
    RunResult,
    Table,
    Volume,
    __version__,
    registry,
)
from .nibabel_support import from_nibabel, to_nibabel  # noqa: F401


def Input(name, type="Volume", description="", multi=False, optional=False):
    """An input port of a Python node: its name and payload type ("Volume", "Table", "Latent", ...)."""
    return {"name": name, "type": type, "description": description, "multi": multi, "optional": optional}


def Output(name, type="Volume", description="", optional=False):
    """An output port of a Python node."""
    return {"name": name, "type": type, "description": description, "optional": optional}


_REQUIRED = object()


def Param(name, kind, default=_REQUIRED, description="", min=None, max=None, choices=None, length=None):
    """A parameter of a Python node, declared as in C++: kind is bool, int, float, string, choice,
    input_path, output_path, int_list or float_list; without a default the pipeline must set it."""
    spec = {"name": name, "kind": kind, "description": description, "min": min, "max": max,
            "choices": choices, "length": length}
    if default is not _REQUIRED:
        spec["default"] = default
    return spec


def node(type, *, inputs=(), outputs=(), params=(), version="1.0.0", description="",
         memory_intensive=False, registry=None):
    """Registers the decorated function as the run function of a node type.

        @ff.node("py.invert", inputs=[ff.Input("volume")], outputs=[ff.Output("volume")],
                 params=[ff.Param("maximum", "float", 1.0)])
        def invert(ctx):
            volume = ctx.input("volume")
            ctx.output("volume", ff.Volume(ctx.param("maximum") - volume.array, like=volume))

    The function runs under the GIL on an executor thread; the rest of the graph keeps running in
    parallel. Its results are never cached (its code is not part of a cache key).
    """
    target = registry if registry is not None else globals()["registry"]()

    def register(function):
        target.add_node(type, function, version=version, description=description or (function.__doc__ or "").strip(),
                        inputs=list(inputs), outputs=list(outputs), params=list(params),
                        memory_intensive=memory_intensive)
        return function

    return register
