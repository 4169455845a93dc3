"""Migration scripts; the package marker makes setuptools ship them with the wheel."""
