"""Processing parameters built from geogan's option specifications (``geogan_qgis.contract``).

Each algorithm lists the options its dialog shows; their key, label, type, default,
bounds and choices come from the same entry the CLI's option is built from, so the
two cannot drift. Choice parameters accept an option by name (``a2b``) or by its
index (``0``), as ``qgis_process help`` documents them. An optional option's label
does not say so: QGIS marks it "[optional]" itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from .contract.options import Option


def _tr(text: str) -> str:
    return QCoreApplication.translate("geogan", text)


class EnumParameter(QgsProcessingParameterEnum):
    """A choice that accepts its option's name or index (QGIS's own takes one or the other)."""

    def __init__(self, name: str, description: str, options: list[str], default: str,
                 optional: bool = False) -> None:
        super().__init__(name, description, options, False, options.index(default), optional)

    def clone(self) -> EnumParameter:
        copy = EnumParameter(self.name(), self.description(), list(self.options()),
                             self.options()[int(self.defaultValue())],
                             bool(self.flags() & QgsProcessingParameterDefinition.FlagOptional))
        copy.setFlags(self.flags())
        return copy

    def checkValueIsAcceptable(self, value: Any, context: Any = None) -> bool:  # noqa: N802
        if isinstance(value, str) and value.strip() in self.options():
            return True
        return super().checkValueIsAcceptable(value, context)

    def value_name(self, value: Any) -> str:
        """The option name of a parameter value: a name, an index, or nothing (the default)."""
        options = list(self.options())
        if value is None or value == "":
            value = self.defaultValue()
        if isinstance(value, str) and value.strip() in options:
            return value.strip()
        try:
            index = int(value)
        except (TypeError, ValueError):
            index = int(self.defaultValue())
        return options[index] if 0 <= index < len(options) else options[int(self.defaultValue())]


def parameter(opt: Option, *, advanced: bool = False,
              file_filter: str = "") -> QgsProcessingParameterDefinition:
    """The Processing parameter of option ``opt`` (key ``opt.qgis_key``, label ``opt.label``).

    A ``path`` option is a file parameter (``file_filter``: its file dialog's filter),
    optional when the option is. A number whose default is None takes 0 for None
    ("automatic", "off"); an optional number is left empty for None instead, so 0 (a
    nodata value, say) is a value like any other.
    """
    key, label = opt.qgis_key, _tr(opt.label)
    result: QgsProcessingParameterDefinition
    if opt.kind == "choice" or (opt.kind == "str" and opt.choices):
        names = list(opt.choices)
        default = opt.default
        if opt.none_choice:
            names = [opt.none_choice, *names]
            default = opt.none_choice if default is None else default
        result = EnumParameter(key, label, names, default)
    elif opt.kind in ("int", "float"):
        kind = (QgsProcessingParameterNumber.Integer if opt.kind == "int"
                else QgsProcessingParameterNumber.Double)
        default = 0 if opt.default is None else opt.default  # 0: "automatic" / "off"
        kwargs: dict[str, Any] = {}
        if opt.optional:
            default, kwargs["optional"] = opt.default, True
        if opt.minimum is not None:
            kwargs["minValue"] = opt.minimum
        elif not opt.optional and (opt.default is None or opt.default >= 0):
            kwargs["minValue"] = 0
        if opt.maximum is not None:
            kwargs["maxValue"] = opt.maximum
        result = QgsProcessingParameterNumber(key, label, kind, default, **kwargs)
    elif opt.kind == "flag":
        result = QgsProcessingParameterBoolean(key, label, bool(opt.default))
    elif opt.kind in ("bands", "str"):
        result = QgsProcessingParameterString(key, label, defaultValue="", optional=True)
    elif opt.kind == "path":
        result = QgsProcessingParameterFile(key, label, QgsProcessingParameterFile.File,
                                            fileFilter=file_filter or _tr("All files (*.*)"),
                                            optional=opt.optional)
    else:
        raise ValueError(f"option {opt.name}: no Processing parameter for kind {opt.kind!r}")
    if advanced:
        result.setFlags(result.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return result


def choice_value(algorithm: Any, parameters: dict[str, Any], opt: Option) -> str | None:
    """The name chosen for choice option ``opt`` (None for its ``none_choice``)."""
    definition = algorithm.parameterDefinition(opt.qgis_key)
    name = definition.value_name(parameters.get(opt.qgis_key))
    return None if opt.none_choice and name == opt.none_choice else name


def number_value(algorithm: Any, parameters: dict[str, Any], opt: Option,
                 context: Any) -> Any:
    """An int or float option's value; 0 means None where the option's default is None,
    unless the option is optional: then empty means None."""
    if opt.optional and parameters.get(opt.qgis_key) in (None, ""):
        return None
    if opt.kind == "int":
        value: Any = algorithm.parameterAsInt(parameters, opt.qgis_key, context)
    else:
        value = algorithm.parameterAsDouble(parameters, opt.qgis_key, context)
    return None if opt.default is None and not value and not opt.optional else value


def option_value(algorithm: Any, parameters: dict[str, Any], opt: Option, context: Any) -> Any:
    """The value of any option's parameter, as the library takes it."""
    if opt.kind == "choice" or (opt.kind == "str" and opt.choices):
        return choice_value(algorithm, parameters, opt)
    if opt.kind in ("int", "float"):
        return number_value(algorithm, parameters, opt, context)
    if opt.kind == "flag":
        return algorithm.parameterAsBoolean(parameters, opt.qgis_key, context)
    if opt.kind == "path":
        value = algorithm.parameterAsFile(parameters, opt.qgis_key, context)
        return Path(value).expanduser() if value else None
    text = algorithm.parameterAsString(parameters, opt.qgis_key, context)
    return text or None
