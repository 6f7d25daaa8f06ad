"""The node graph of a FastGPT V488 chat app that answers from knowledge bases.

`simple_dataset_chat` builds the data of FastGPT's "simpleDatasetChat" template
(projects/app/src/web/core/app/templates.ts at V488): a system-config node, the workflow start,
a knowledge base search and an AI chat node fed with the search's quotes. Node ids, input keys
and each input's renderTypeList, valueType and label are kept as the template has them, because
both the runtime and FastGPT's editor read them.
"""

from dataclasses import dataclass
from typing import Any

NODE_VERSION = "481"
GUIDE_ID = "userGuide"
START_ID = "workflowStartNodeId"
SEARCH_ID = "iKBoX2vIzETU"
CHAT_ID = "7BdojPlukIQw"
SIMPLE_APP = "simple"

# FlowNodeInputTypeEnum / WorkflowIOValueTypeEnum values this graph uses.
HIDDEN = "hidden"
REFERENCE = "reference"
TEXTAREA = "textarea"
NUMBER_INPUT = "numberInput"
STRING = "string"
NUMBER = "number"
BOOLEAN = "boolean"
ANY = "any"
CHAT_HISTORY = "chatHistory"
DATASET_QUOTE = "datasetQuote"
SELECT_DATASET = "selectDataset"

USER_QUESTION = "用户问题"
TTS_CONFIG = {"type": "web"}
WHISPER_CONFIG = {"open": False, "autoSend": False, "autoTTSResponse": False}
CHAT_INPUT_GUIDE = {"open": False, "textList": [], "customUrl": ""}
MAX_TEMPERATURE = 10  # FastGPT's scale, mapped onto the model's own maxTemperature


@dataclass(frozen=True)
class AppGraph:
    """What an app runs: `nodes` and `edges` of its workflow and its `chatConfig`."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    chat_config: dict[str, Any]
    type: str = SIMPLE_APP


def _input(key: str, render: list[str], value_type: str, label: str = "", **extra: Any) -> dict:
    """One node input; `extra` holds `value` and the editor's hints where the template has them."""
    return {"key": key, "renderTypeList": render, "valueType": value_type, "label": label, **extra}


def _output(key: str, label: str, value_type: str, **extra: Any) -> dict:
    return {
        "id": key,
        "key": key,
        "label": label,
        "valueType": value_type,
        "type": "static",
        **extra,
    }


def _node(
    node_id: str,
    flow_type: str,
    *,
    name: str,
    intro: str,
    avatar: str,
    position: tuple[float, float],
    inputs: list[dict],
    outputs: list[dict],
    show_status: bool = False,
) -> dict[str, Any]:
    node = {
        "nodeId": node_id,
        "name": name,
        "intro": intro,
        "avatar": avatar,
        "flowNodeType": flow_type,
        "position": {"x": position[0], "y": position[1]},
        "version": NODE_VERSION,
        "inputs": inputs,
        "outputs": outputs,
    }
    if show_status:
        node["showStatus"] = True
    return node


def _edge(source: str, target: str) -> dict[str, str]:
    return {
        "source": source,
        "target": target,
        "sourceHandle": f"{source}-source-right",
        "targetHandle": f"{target}-target-left",
    }


def _user_question(tool_description: str, *, referenced: bool) -> dict[str, Any]:
    """The `userChatInput` input; a reference is [node id, output key]."""
    extra: dict[str, Any] = {"required": True, "toolDescription": tool_description}
    if referenced:
        extra["value"] = [START_ID, "userChatInput"]
    return _input("userChatInput", [REFERENCE, TEXTAREA], STRING, USER_QUESTION, **extra)


def _guide_node(welcome_text: str) -> dict[str, Any]:
    """The system-config node: the legacy home of the chat settings chatConfig overrides."""
    hidden = [HIDDEN]
    return _node(
        GUIDE_ID,
        "userGuide",
        name="系统配置",
        intro="可以配置应用的系统参数",
        avatar="core/workflow/template/systemConfig",
        position=(531.2422736065552, -486.7611729549753),
        inputs=[
            _input("welcomeText", hidden, STRING, "core.app.Welcome Text", value=welcome_text),
            _input("variables", hidden, ANY, "core.app.Chat Variable", value=[]),
            _input("questionGuide", hidden, BOOLEAN, "core.app.Question Guide", value=False),
            _input("tts", hidden, ANY, value=dict(TTS_CONFIG)),
            _input("whisper", hidden, ANY, value=dict(WHISPER_CONFIG)),
            _input("scheduleTrigger", hidden, ANY, value=None),
        ],
        outputs=[],
    )


def _start_node() -> dict[str, Any]:
    return _node(
        START_ID,
        "workflowStart",
        name="流程开始",
        intro="",
        avatar="core/workflow/template/workflowStart",
        position=(558.4082376415505, 123.72387429194112),
        inputs=[_user_question(USER_QUESTION, referenced=False)],
        outputs=[_output("userChatInput", "core.module.input.label.user question", STRING)],
    )


def _search_node(
    dataset_ids: list[str], similarity: float, limit: int, using_rerank: bool
) -> dict[str, Any]:
    hidden = [HIDDEN]
    datasets = [{"datasetId": dataset_id} for dataset_id in dataset_ids]
    return _node(
        SEARCH_ID,
        "datasetSearchNode",
        name="知识库搜索",
        intro="调用“语义检索”和“全文检索”能力，从“知识库”中查找可能与问题相关的参考内容",
        avatar="core/workflow/template/datasetSearch",
        position=(918.5901682164496, -227.11542247619582),
        show_status=True,
        inputs=[
            _input(
                "datasets",
                [SELECT_DATASET, REFERENCE],
                SELECT_DATASET,
                "core.module.input.label.Select dataset",
                value=datasets,
                list=[],
                required=True,
            ),
            _input("similarity", ["selectDatasetParamsModal"], NUMBER, value=similarity),
            _input("limit", hidden, NUMBER, value=limit),
            _input("searchMode", hidden, STRING, value="embedding"),
            _input("usingReRank", hidden, BOOLEAN, value=using_rerank),
            _input("datasetSearchUsingExtensionQuery", hidden, BOOLEAN, value=True),
            _input("datasetSearchExtensionModel", hidden, STRING),
            _input("datasetSearchExtensionBg", hidden, STRING, value=""),
            _user_question("需要检索的内容", referenced=True),
        ],
        outputs=[
            _output(
                "quoteQA",
                "core.module.Dataset quote.label",
                DATASET_QUOTE,
                description="特殊数组格式，搜索结果为空时，返回空数组。",
            )
        ],
    )


def _chat_node(model: str, system_prompt: str, temperature: int, max_tokens: int) -> dict[str, Any]:
    hidden = [HIDDEN]
    prompt_tip = "core.app.tip.chatNodeSystemPromptTip"
    return _node(
        CHAT_ID,
        "chatNode",
        name="AI 对话",
        intro="AI 大模型对话",
        avatar="core/workflow/template/aiChat",
        position=(1638.509551404687, -341.0428450861567),
        show_status=True,
        inputs=[
            _input(
                "model",
                ["settingLLMModel", REFERENCE],
                STRING,
                "core.module.input.label.aiModel",
                value=model,
            ),
            _input("temperature", hidden, NUMBER, value=temperature, min=0, max=10, step=1),
            _input("maxToken", hidden, NUMBER, value=max_tokens, min=100, max=4000, step=50),
            _input("isResponseAnswerText", hidden, BOOLEAN, value=True),
            _input("quoteTemplate", hidden, STRING),
            _input("quotePrompt", hidden, STRING),
            _input(
                "systemPrompt",
                [TEXTAREA, REFERENCE],
                STRING,
                "core.ai.Prompt",
                max=3000,
                description=prompt_tip,
                placeholder=prompt_tip,
                value=system_prompt,
            ),
            _input(
                "history",
                [NUMBER_INPUT, REFERENCE],
                CHAT_HISTORY,
                "core.module.input.label.chat history",
                required=True,
                min=0,
                max=30,
                value=6,
            ),
            _user_question(USER_QUESTION, referenced=True),
            _input(
                "quoteQA",
                ["settingDatasetQuotePrompt"],
                DATASET_QUOTE,
                debugLabel="知识库引用",
                description="",
                value=[SEARCH_ID, "quoteQA"],
            ),
        ],
        outputs=[
            _output(
                "history",
                "core.module.output.label.New context",
                CHAT_HISTORY,
                description="core.module.output.description.New context",
            ),
            _output(
                "answerText",
                "core.module.output.label.Ai response content",
                STRING,
                description="core.module.output.description.Ai response content",
            ),
        ],
    )


def chat_config(welcome_text: str = "") -> dict[str, Any]:
    """The app's chatConfig, saying what the system-config node says (it overrides that node)."""
    return {
        "welcomeText": welcome_text,
        "variables": [],
        "questionGuide": False,
        "ttsConfig": dict(TTS_CONFIG),
        "whisperConfig": dict(WHISPER_CONFIG),
        "chatInputGuide": {**CHAT_INPUT_GUIDE, "textList": []},
    }


def simple_dataset_chat(
    *,
    dataset_ids: list[str],
    model: str,
    system_prompt: str = "",
    similarity: float = 0.4,
    limit: int = 1500,
    using_rerank: bool = False,
    temperature: int = 0,
    max_tokens: int = 2000,
    welcome_text: str = "",
) -> AppGraph:
    """A chat app that searches these knowledge bases for every question and answers with
    `model` (an llmModels[].model of config.json) from what it found.

    `limit` is the most tokens of quotes handed to the model; `temperature` is on FastGPT's 0-10
    scale. Search runs with the embedding model of the first knowledge base, so all of them
    should share one.
    """
    if not dataset_ids:
        raise ValueError("A knowledge base chat app needs at least one knowledge base.")
    if not model:
        raise ValueError("A knowledge base chat app needs a chat model.")
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise ValueError(f"The temperature is on FastGPT's 0 to 10 scale, not {temperature}.")
    if not 0 <= similarity <= 1:
        raise ValueError(f"The similarity threshold is between 0 and 1, not {similarity}.")
    nodes = [
        _guide_node(welcome_text),
        _start_node(),
        _chat_node(model, system_prompt, temperature, max_tokens),
        _search_node(list(dataset_ids), similarity, limit, using_rerank),
    ]
    edges = [_edge(START_ID, SEARCH_ID), _edge(SEARCH_ID, CHAT_ID)]
    return AppGraph(nodes=nodes, edges=edges, chat_config=chat_config(welcome_text))
