"""FuSe trainer: compact FuSe-shaped models, FuSe's losses, robust finetuning, export to a bundle.

Needs PyTorch and pyarrow (requirements/train.txt, `./setup.sh --train`); the nodes never import it.
"""
