"""A hybrid's model directory: ``save_pretrained`` writes a self-contained one (config with the lock, weights,
generation config, tokenizer, the remote-code modules), ``from_pretrained`` checks one before loading it, and the
model's tokenizer comes from where the model was loaded. Mixed into ``HybridModel``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..data.tokenizer import Tokenizer, load_tokenizer, save_tokenizer, saved_tokenizer, set_generation_ids
from ..errors import RunError
from ..io import give_umask_mode
from .config import HybridConfig
from .names import LEGACY_KEYS
from .remote_code import AUTO_MAP, write_remote_code


class SavedHybrid:
    """Saving and loading of ``HybridModel`` (a mixin before ``PreTrainedModel``: ``super()`` is transformers')."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; the model remembers where it came from, so that
        ``get_tokenizer`` reads the tokenizer saved beside it (nothing outside the directory is read).
        Weights saved by earlier releases under their old names load too (``LEGACY_KEYS``).

        Nothing damaged loads: a local directory is checked before anything is loaded (``_check_saved``),
        and transformers' loading report after (a tensor missing would be initialised at random); either
        refusal is a ``RunError`` saying what is wrong."""
        from .format import check_loading_info

        kwargs.setdefault("key_mapping", dict(LEGACY_KEYS))
        directory = Path(pretrained_model_name_or_path or "") / (kwargs.get("subfolder") or "")
        if pretrained_model_name_or_path is not None and directory.is_dir():
            cls._check_saved(directory, kwargs.get("config"), kwargs["key_mapping"])
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        check_loading_info(info, directory)
        model._tokenizer_home = str(pretrained_model_name_or_path)
        return (model, info) if wants_info else model

    @classmethod
    def _check_saved(cls, directory: Path, config: HybridConfig | None, key_mapping: Mapping[str, str]) -> None:
        """A saved hybrid's directory, before loading: its config.json (a JSON object, sizes bounded, a lock
        whose components are each listed once; unless ``config`` is given) and its generation config are
        readable, its weights files are inside it, and they hold exactly the tensors of the model the config
        describes (built on the meta device), in its shapes. A ``RunError`` (``hybridc.models.load``) otherwise."""
        import copy

        from .format import (build_on_meta, check_generation_config, check_hybrid_config, check_tensors,
                                    load_config, read_config, refuse_plain)

        if isinstance(config, HybridConfig):
            config, where = copy.deepcopy(config), Path(f"the config given for {directory}")
        else:
            data = read_config(directory)
            refuse_plain(directory, data)
            check_hybrid_config(data, directory / "config.json")
            # read as transformers reads it (floats JSON cannot hold, such as inf, are tagged objects)
            config, where = load_config(cls.config_class.from_pretrained, directory), directory / "config.json"
        resolved = check_hybrid_config({"lock": config.lock, "selection": config.selection}, where)
        check_generation_config(directory)
        check_tensors(build_on_meta(lambda: cls(config, resolved=resolved), directory), directory, key_mapping)

    @classmethod
    def is_remote_code(cls) -> bool:
        """False: a hybrid's code is the installed hybridc package, whatever class loaded it. After a
        ``trust_remote_code=True`` load transformers marks the class as remote code, and ``save_pretrained`` would
        copy the module defining it; hybridc writes the directory's modules itself (``save_pretrained``), the same
        for every hybrid, so a model loaded from a directory saved by any release saves again."""
        return False

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """``PreTrainedModel.save_pretrained`` (config.json with the lock, model.safetensors,
        generation_config.json) plus the hybrid's tokenizer files (see ``get_tokenizer``), so the directory
        is self-contained: ``from_pretrained`` and ``AutoTokenizer.from_pretrained`` need nothing else.
        The config's ``auto_map`` and two small modules (``hybridc.models.remote_code.REMOTE_CODE``) let any transformers
        client load it with ``trust_remote_code=True`` without importing hybridc first, and save it again (what
        ``Trainer.save_model``, its checkpoints, PEFT's merged model and TRL call) into a directory that loads
        the same way."""
        tokenizer = self.get_tokenizer()
        if tokenizer is not None:
            set_generation_ids(self.generation_config, tokenizer)
            set_generation_ids(self.config, tokenizer)  # clients read the special tokens from the config too
        self.config.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            give_umask_mode(*Path(save_directory).glob("*.safetensors"))
            write_remote_code(save_directory)
            if tokenizer is not None:
                save_tokenizer(tokenizer, save_directory)

    def get_tokenizer(self) -> Tokenizer | None:
        """The hybrid's tokenizer (the spec's ``tokenizer``): the one saved in the directory this model was
        loaded from, else loaded from its source (a component's directory or Hub id, a tokenizer directory,
        ``hf:<id>``; ``bytes`` needs none). None when there is none: a from-scratch component's, or a source
        without tokenizer files (``tokenizer_problem`` says why)."""
        if not self._tokenizer_known:
            field = self.resolved_spec.spec.tokenizer
            try:
                if self._tokenizer_home is not None:
                    tokenizer = saved_tokenizer(field, self._tokenizer_home)
                    problem = None if tokenizer is not None else f"{self._tokenizer_home} holds no tokenizer files"
                else:
                    tokenizer = load_tokenizer(self.resolved_spec)
                    problem = None if tokenizer is not None else (
                        f"the tokenizer is component '{field}', which is built from scratch and has none")
            except RunError as err:
                tokenizer, problem = None, err.render().removeprefix("error: ")
            self.set_tokenizer(tokenizer, problem)
        return self._tokenizer

    def set_tokenizer(self, tokenizer: Tokenizer | None, problem: str | None = None) -> None:
        """Give the model its tokenizer (one already loaded, or another model's: ``discretize`` passes it on)."""
        self._tokenizer, self._tokenizer_known, self.tokenizer_problem = tokenizer, True, problem
