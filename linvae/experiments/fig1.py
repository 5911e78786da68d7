"""Fig 1: graphical models of the VAE, CVAE and two-latent MHVAE, drawn with matplotlib."""
from ..plotting import style
from ._common import Output


def _node(ax, xy, label, observed=False):
    from matplotlib.patches import Circle

    ax.add_patch(Circle(xy, 0.32, facecolor="0.85" if observed else "white", edgecolor="black", lw=1.2))
    ax.text(*xy, label, ha="center", va="center", fontsize=12)


def _arrow(ax, a, b, color, dashed=False, rad=0.0):
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="-|>", color=color, lw=1.3, shrinkA=13, shrinkB=13,
                                                    ls="--" if dashed else "-",
                                                    connectionstyle=f"arc3,rad={rad}"))


def compute(*, quick=False, seed=0, backend="auto", data=None):
    """Solid arrows: generative model p; dashed: inference model q; grey nodes are observed."""
    gen, inf = "C0", "C1"
    with style() as plt:
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.0))
        ax = axes[0]
        _node(ax, (0, 1.5), "z")
        _node(ax, (0, 0), "x", True)
        _arrow(ax, (0, 1.5), (0, 0), gen, rad=0.3)
        _arrow(ax, (0, 0), (0, 1.5), inf, True, rad=0.3)
        ax.set_title("VAE")
        ax = axes[1]
        _node(ax, (0, 1.5), "z")
        _node(ax, (-0.8, 0), "x", True)
        _node(ax, (0.8, 0), "y", True)
        _arrow(ax, (0, 1.5), (0.8, 0), gen, rad=0.25)
        _arrow(ax, (-0.8, 0), (0.8, 0), gen)
        _arrow(ax, (0.8, 0), (0, 1.5), inf, True, rad=0.25)
        _arrow(ax, (-0.8, 0), (0, 1.5), inf, True)
        ax.set_title("CVAE: q(z|x,y), p(y|z,x)")
        ax = axes[2]
        _node(ax, (0, 3.0), "z₂")
        _node(ax, (0, 1.5), "z₁")
        _node(ax, (0, 0), "x", True)
        for a, b in (((0, 3.0), (0, 1.5)), ((0, 1.5), (0, 0))):
            _arrow(ax, a, b, gen, rad=0.3)
            _arrow(ax, b, a, inf, True, rad=0.3)
        ax.set_title("two-latent MHVAE")
        for ax in axes:
            ax.set_xlim(-1.5, 1.5)
            ax.set_ylim(-0.6, 3.6)
            ax.set_aspect("equal")
            ax.axis("off")
        axes[0].plot([], [], color=gen, label="generative model p")
        axes[0].plot([], [], color=inf, ls="--", label="inference model q")
        fig.legend(loc="lower center", ncol=2, fontsize=8)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    return Output(fig, {}, [], {})
