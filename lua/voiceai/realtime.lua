--[[
voiceai/realtime.lua: the realtime (v2) part of secretary_ai.lua, for a channel with voiceai_mode=realtime.

The script stays with a realtime call for as long as the bridge has it, so that a bridge that is down, refuses
the call or dies mid-call never leaves the caller in silence:

  * It starts the stream with `uuid_audio_stream <uuid> start <url> mono <rate> <metadata>`. That answers
    "+OK Success" even when nothing listens (the module connects in the background): what became of the
    connection arrives later as the events mod_audio_stream::connect / ::json / ::error / ::disconnect, which
    an EventConsumer made before the start receives (for every channel: they are filtered on Unique-ID).
  * It keeps the call's media flowing by sleeping in short steps: FreeSWITCH feeds the stream from the
    session's reads, so a script blocked elsewhere would silence it. (The steps also run uuid_broadcast,
    uuid_break and the input callback.) Between the steps it drains the events without blocking.
  * The bridge claims the call with the text frame {"type":"voiceai.claimed","call_uuid":…} once it has
    checked the token and the domain and started the session. No claim within voiceai_claim_timeout_ms, or
    an error or a disconnect before it: the stream is stopped and the call goes on turn-based ("fallback").
  * Claimed, the bridge ends the call over ESL (uuid_transfer, uuid_kill: session:ready() turns false) or,
    without ESL, sends {"type":"voiceai.action","action":"transfer"|"hangup",…}, which is carried out here,
    checked like a v1 reply. The stream failing while the caller is still there and no action came means the
    bridge died or shut down mid-call: the stream is stopped and the call goes on turn-based ("resume").

Channel variables: voiceai_bridge_url (default ws://127.0.0.1:8085), voiceai_sample_rate (8000 or 16000,
default 8000), voiceai_claim_timeout_ms (default 3000); the token travels in STREAM_EXTRA_HEADERS, which the
module reads itself. run() returns "handled" (the call is done here), "fallback" or "resume", and a reason.
]]

local realtime = {}

local SUBCLASSES = {
	"mod_audio_stream::connect",
	"mod_audio_stream::json",
	"mod_audio_stream::error",
	"mod_audio_stream::disconnect",
}
local STEP_MS = 20 -- one frame: events are seen within a frame, and the loop costs little
local DEFAULT_BRIDGE_URL = "ws://127.0.0.1:8085"
local DEFAULT_CLAIM_TIMEOUT_MS = 3000
local RATES = { [8000] = "8k", [16000] = "16k" }

-- Where and how to stream, from the channel; nil and a reason when that can't be used.
local function stream_settings(ctx)
	local base = string.gsub(ctx.channel_var("voiceai_bridge_url") or DEFAULT_BRIDGE_URL, "/+$", "")
	if not string.find(base, "^wss?://[A-Za-z0-9%.:%[%]_%-]+$") then
		return nil, "voiceai_bridge_url is not a plain ws(s)://host:port"
	end
	if not ctx.call.domain_uuid then
		return nil, "a realtime call needs the channel's domain_uuid"
	end
	local rate = tonumber(ctx.channel_var("voiceai_sample_rate") or "8000")
	if not RATES[rate] then
		return nil, "voiceai_sample_rate must be 8000 or 16000"
	end
	local timeout = tonumber(ctx.channel_var("voiceai_claim_timeout_ms") or "") or DEFAULT_CLAIM_TIMEOUT_MS
	return {
		url = base .. "/stream/" .. ctx.call.domain_uuid .. "/" .. ctx.call.uuid,
		rate = rate,
		claim_timeout = math.max(200, math.min(30000, math.floor(timeout))),
	}
end

-- A caller value fit for the metadata: the module takes the rest of the command line as it is, so only
-- characters that can't break it out (no blanks, quotes or backslashes) are kept.
local function plain(value)
	return string.sub((string.gsub(value or "", "[^%w%+%*#%._@%-]", "")), 1, 64)
end

local function metadata(ctx, rate)
	return string.format(
		'{"caller_id_number":"%s","destination_number":"%s","sample_rate":%d}',
		plain(ctx.channel_var("caller_id_number")),
		plain(ctx.channel_var("destination_number")),
		rate
	)
end

local function body_of(ctx, event)
	local body = event:getBody()
	if type(body) ~= "string" then
		return nil
	end
	local ok, value = pcall(ctx.json.decode, body)
	if ok and type(value) == "table" then
		return value
	end
	return nil
end

-- The close code and reason (or error) an event carries, for the log.
local function detail(ctx, data)
	local message = type(data) == "table" and data.message or nil
	if type(message) ~= "table" then
		return ""
	end
	local code = message.code
	if type(code) == "number" and code == math.floor(code) then
		code = string.format("%d", code) -- freeswitch.JSON decodes every number as a float: 1008, not 1008.0
	end
	return " (" .. ctx.clean(tostring(code), 16) .. " " .. ctx.clean(tostring(message.reason or message.error or ""), 120) .. ")"
end

-- A call action the bridge sent through the stream (it had no ESL): nil and a reason when unusable.
local function carry_out(ctx, action)
	if action.call_uuid ~= ctx.call.uuid then
		return nil, "the action names another call"
	end
	if action.action == "transfer" then
		local context = action.context
		if context == nil then
			context = ctx.call.domain_name
		end
		if not (ctx.is_extension(action.destination) and ctx.is_context(context)) then
			return nil, "the transfer is not to a plain extension and context"
		end
		ctx.session:transfer(action.destination, "XML", context)
		return "handled", "the bridge asked for a transfer to " .. action.destination
	elseif action.action == "hangup" then
		ctx.session:hangup("NORMAL_CLEARING")
		return "handled", "the bridge asked to hang up"
	end
	return nil, "the action is neither transfer nor hangup"
end

local function on_event(ctx, stream, event)
	local subclass = event:getHeader("Event-Subclass")
	if subclass == "mod_audio_stream::connect" then
		ctx.log("info", "stream connected to the bridge")
	elseif subclass == "mod_audio_stream::json" then
		local data = body_of(ctx, event)
		if data == nil then
			return nil
		elseif data.type == "voiceai.claimed" and data.call_uuid == ctx.call.uuid then
			stream.claimed = true
			ctx.log("info", "the bridge claimed the call")
		elseif data.type == "voiceai.action" then
			local outcome, reason = carry_out(ctx, data)
			if outcome then
				return outcome, reason
			end
			ctx.log("warning", "ignored an action from the bridge: " .. reason)
		end
	elseif subclass == "mod_audio_stream::error" or subclass == "mod_audio_stream::disconnect" then
		local what = (subclass == "mod_audio_stream::error" and "failed" or "was closed") .. detail(ctx, body_of(ctx, event))
		if not ctx.session:ready() then
			return "handled", "the call had left the script when the stream " .. what
		elseif stream.claimed then
			return "resume", "the stream " .. what .. " mid-call, with no action from the bridge"
		end
		return "fallback", "the stream " .. what .. " before the bridge claimed the call"
	end
	return nil
end

local function drain(ctx, consumer, stream)
	local event = consumer:pop(0)
	while event do
		if event:getHeader("Unique-ID") == ctx.call.uuid then
			local outcome, reason = on_event(ctx, stream, event)
			if outcome then
				return outcome, reason
			end
		end
		event = consumer:pop(0)
	end
	return nil
end

--[[
ctx: session, call (uuid, domain_uuid, domain_name), channel_var(name), log(level, message), json (decode),
clean(text, max_bytes), is_extension(value), is_context(value): the script's own, so that a transfer the
bridge asks for is checked exactly like one the turn-based service asks for.
]]
function realtime.run(ctx)
	local settings, problem = stream_settings(ctx)
	if not settings then
		return "fallback", problem
	end
	local consumer = freeswitch.EventConsumer("CUSTOM", SUBCLASSES[1])
	for i = 2, #SUBCLASSES do
		consumer:bind("CUSTOM", SUBCLASSES[i])
	end
	local api = freeswitch.API()
	local uuid = ctx.call.uuid
	local start = table.concat({ uuid, "start", settings.url, "mono", RATES[settings.rate], metadata(ctx, settings.rate) }, " ")
	local reply = api:execute("uuid_audio_stream", start)
	if type(reply) ~= "string" or string.sub(reply, 1, 3) ~= "+OK" then
		consumer:cleanup()
		return "fallback", "uuid_audio_stream did not start: " .. ctx.clean(tostring(reply), 120)
	end
	local stream, waited = { claimed = false }, 0
	while true do
		local outcome, reason = drain(ctx, consumer, stream)
		if not outcome and not ctx.session:ready() then
			outcome, reason = "handled", "the call left the script (transferred or hung up)"
		elseif not outcome and not stream.claimed and waited >= settings.claim_timeout then
			outcome, reason = "fallback", "the bridge did not claim the call within " .. settings.claim_timeout .. " ms"
		end
		if outcome then
			if outcome ~= "handled" then
				api:execute("uuid_audio_stream", uuid .. " stop")
			end
			consumer:cleanup()
			return outcome, reason
		end
		ctx.session:sleep(STEP_MS)
		waited = waited + STEP_MS
	end
end

return realtime
