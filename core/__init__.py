"""The ground floor: what the converters (``data_prep/``) and the pipeline (``eval/``) both speak.

The data model (a sentence with spans, BIO files), file and CLI helpers, the mappings and
definitions, prompt formats and chat templates, the ``<ENT>`` tagger, the answer parser, the
engine's message types and the registries of every extension point. Nothing here imports
``data_prep`` or ``eval`` (``tests/test_layers.py`` checks it).
"""
