"""Datasets: the synthetic Shapes domain (``shapes``, spec in docs/shapes.md) and
readers for caption files that come with imported images (``coco``).

    lake datasets shapes make data/shapes -n 2000 --no-star
"""
