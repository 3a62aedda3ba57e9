--[[
secretary_ai.lua: FreeSWITCH answers a call with the AI secretary, one turn at a time (v1).

Install it in FreeSWITCH's script directory (FusionPBX: /usr/share/freeswitch/scripts) together with the
voiceai/ folder next to it, and route an extension to it: <action application="lua" data="secretary_ai.lua"/>.
The script finds voiceai/ itself (next to this file, and in the global variable script_dir): stock
FreeSWITCH's lua.conf.xml leaves the script directory off Lua's package.path.

Channel variables (FusionPBX sets the domain and caller ones; the dialplan sets the voiceai_ ones):
  voiceai_url               base URL of the ivr_service (default http://127.0.0.1:8086)
  voiceai_fallback          extension that takes the call when the service fails (e.g. the front desk)
  voiceai_fallback_context  its dialplan context (default: domain_name)
  voiceai_fallback_prompt   what the caller hears before that transfer (default ivr/ivr-hold_connect_call.wav)
  voiceai_timeout           seconds one reply of the service may take (default 20)
  voiceai_spool_dir         the spool as FreeSWITCH sees it: files outside it are refused (default: not checked)
  voiceai_mode              "realtime": stream the call to the bridge first (voiceai/realtime.lua); the turns
                            below are its fallback when the bridge is down, refuses the call or goes away
  domain_uuid, domain_name, caller_id_number, caller_id_name, destination_number

The service's shared secret (ivr.shared_secret), when it has one, comes from FreeSWITCH's global variable
voiceai_secret (vars.xml: <X-PRE-PROCESS cmd="set" data="voiceai_secret=..."/>; FusionPBX: Advanced >
Variables), never from the channel: no caller can set it, it stays out of the per-domain dialplans FusionPBX
shows a domain's admins, and it is sent as the header X-VoiceAI-Secret, never logged.

The service does the thinking; this script only plays, records and acts, and trusts nothing it is sent:
every path, extension and number in a reply is checked before FreeSWITCH sees it. Any failure (service
unreachable, an HTTP error, a reply it can't use) ends the same way: the fallback prompt, then a transfer
to the fallback destination (this needs none of the voiceai modules, so it works when they are missing).
The caller never waits in silence and no Lua error reaches FreeSWITCH. At the end the service is told how the
call ended: the caller left, a reply transferred or hung up, or the script fell back (and why).
]]

local realtime -- voiceai.realtime, for voiceai_mode=realtime; required by load_modules as well
local http -- voiceai.http, required by load_modules inside the protected call: a missing module falls back

local DEFAULT_URL = "http://127.0.0.1:8086"
local DEFAULT_PROMPT = "ivr/ivr-hold_connect_call.wav"
local DEFAULT_TIMEOUT_S = 20
local END_TIMEOUT_S = 3 -- the transfer only happens once this script returns: don't hold the caller long
local MAX_TURNS = 60 -- the service ends a call long before this; it only stops a runaway loop
local MAX_DIGITS = 8
local DIGIT_WAIT_MS, INTERDIGIT_MS = 2000, 1500

local call = {} -- what this call knows: channel values, its state with the service, the last failure, its end
local pressed = "" -- keys the caller pressed during the last prompt or recording

local function log(level, message)
	freeswitch.consoleLog(level, "[secretary_ai] " .. message .. "\n")
end

local function channel_var(name)
	local value = session:getVariable(name)
	if value == nil or value == "" then
		return nil
	end
	return value
end

-- How the call ended, for the service's record: the first ending seen is the one that counts.
local function ended(by, reason)
	if call.ended_by == nil then
		call.ended_by, call.end_reason = by, reason
	end
end

-- The modules ----------------------------------------------------------------------------------------------

local function folder_of(path)
	return string.match(path, "^(.*)[/\\][^/\\]*$")
end

-- Where voiceai/ is: next to this file (mod_lua loads a script by its full path) and in FreeSWITCH's script
-- directory (the global variable script_dir). Each goes first on package.path, once, unless it holds one of
-- the characters that mean something in a path template.
local function add_module_folders()
	local folders = {}
	local info = debug and debug.getinfo and debug.getinfo(1, "S")
	if info and type(info.source) == "string" and string.sub(info.source, 1, 1) == "@" then
		folders[#folders + 1] = folder_of(string.sub(info.source, 2))
	end
	folders[#folders + 1] = freeswitch.getGlobalVariable("script_dir")
	for i = #folders, 1, -1 do
		local folder = folders[i]
		if type(folder) == "string" and folder ~= "" and not string.find(folder, "[;?]") then
			local entry = folder .. "/?.lua"
			if not string.find(";" .. package.path .. ";", ";" .. entry .. ";", 1, true) then
				package.path = entry .. ";" .. package.path
			end
		end
	end
end

-- Every require of the script happens here, inside the protected call.
local function load_modules()
	add_module_folders()
	http = require("voiceai.http")
	if call.mode == "realtime" then
		realtime = require("voiceai.realtime")
	end
end

-- Checks for values that come from outside -----------------------------------------------------------------

-- An extension FreeSWITCH can route: nothing that could smuggle in a second dialplan argument.
local function is_extension(value)
	return type(value) == "string" and #value <= 32 and string.find(value, "^[A-Za-z0-9*#+_%-]+$") ~= nil
end

local function is_context(value)
	return type(value) == "string" and #value <= 253 and string.find(value, "^[A-Za-z0-9_%.%-]+$") ~= nil
end

local function is_plain_path(value)
	return type(value) == "string"
		and #value <= 1024
		and string.find(value, "^/[A-Za-z0-9_%./%-]+$") ~= nil
		and not string.find(value, "..", 1, true)
end

-- A file the service names for playing or recording: a plain absolute path (none of the prefixes and
-- separators FreeSWITCH gives a meaning to in a file string: "{vars}", "tone_stream://", "!"), inside
-- voiceai_spool_dir when that is set, so a service can't make FreeSWITCH read or write elsewhere.
local function is_spool_path(value)
	if not is_plain_path(value) then
		return false
	end
	return call.spool_dir == nil or string.sub(value, 1, #call.spool_dir + 1) == call.spool_dir .. "/"
end

local function is_uuid(value)
	return type(value) == "string"
		and string.find(value, "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function whole_number(value, low, high)
	if type(value) ~= "number" or value ~= value then
		return nil
	end
	value = math.floor(value)
	if value < low or value > high then
		return nil
	end
	return value
end

local ACTIONS = { continue = true, transfer = true, hangup = true, take_message = true }

-- The parts of a reply we act on, checked; nil and a reason when any of them is unusable.
local function usable_reply(data)
	if type(data) ~= "table" then
		return nil, "the reply is not an object"
	end
	local say, action = data.say, data.action
	if type(say) ~= "table" or not is_spool_path(say.audio_file) then
		return nil, "the reply has no playable say.audio_file"
	end
	if type(action) ~= "table" or not ACTIONS[action.type] then
		return nil, "the reply has no known action"
	end
	local reply = { audio_file = say.audio_file, text = say.text, action = action.type }
	if action.type == "transfer" then
		if not is_extension(action.destination) then
			return nil, "the transfer destination is not a plain extension"
		end
		reply.destination = action.destination
		reply.context = action.context
		if reply.context == nil then
			reply.context = call.domain_name or channel_var("context")
		end
		if not is_context(reply.context) then
			return nil, "the transfer context is not a plain name"
		end
	elseif action.type == "continue" or action.type == "take_message" then
		local record = data.record
		if type(record) ~= "table" or not is_spool_path(record.file) then
			return nil, "the reply has no usable record.file"
		end
		reply.record = {
			file = record.file,
			max_seconds = whole_number(record.max_seconds, 1, 3600),
			silence_threshold = whole_number(record.silence_threshold, 0, 32767),
			silence_seconds = whole_number(record.silence_seconds, 0, 60),
		}
		if not (reply.record.max_seconds and reply.record.silence_threshold and reply.record.silence_seconds) then
			return nil, "the reply's record settings are not numbers in range"
		end
	end
	return reply
end

-- Talking to the service ----------------------------------------------------------------------------------

local function post(path, payload, timeout_s)
	local result = http.post_json(freeswitch.API(), call.url .. path, payload, timeout_s or call.timeout, call.secret)
	if not result.ok then
		call.failure = result
	end
	return result
end

local function with_domain(payload)
	if call.domain_uuid then
		payload.domain_uuid = call.domain_uuid
	elseif call.domain_name then
		payload.domain_name = call.domain_name
	end
	return payload
end

-- One exchange that should bring the next reply: nil and a reason when it did not.
local function ask(path, payload)
	local result = post(path, with_domain(payload))
	if not result.ok then
		return nil, path .. ": " .. result.reason
	end
	local reply, problem = usable_reply(result.data)
	if not reply then
		call.failure = result
		return nil, path .. ": " .. problem
	end
	return reply
end

local function start_call()
	call.started = true
	return ask("/api/v1/calls", {
		call_uuid = call.uuid,
		caller_id_number = http.clean_text(channel_var("caller_id_number"), 64),
		caller_id_name = http.clean_text(channel_var("caller_id_name"), 128),
		destination_number = http.clean_text(channel_var("destination_number"), 64),
		resumed_from = call.resumed_from,
	})
end

-- The service keeps the call's state until told it ended; a service that did not answer at all is not
-- asked again (that would only delay the caller's transfer).
local function end_call()
	if not call.started or (call.failure and call.failure.status == 0) then
		return
	end
	local payload = { ended_by = call.ended_by, destination = call.end_destination }
	if payload.ended_by == nil and not session:ready() then
		payload.ended_by = "caller"
	end
	if call.end_reason then
		payload.reason = http.clean_text(call.end_reason, 200)
	end
	-- After the caller hung up, FreeSWITCH tells a script no cause ("NONE"): only its own is known.
	local cause = call.hangup_cause or session:hangupCause()
	if cause and cause ~= "" and cause ~= "NONE" then
		payload.hangup_cause = http.clean_text(cause, 64)
	end
	local result = post("/api/v1/calls/" .. call.uuid .. "/end", with_domain(payload), END_TIMEOUT_S)
	if not result.ok then
		log("warning", "could not end the call with the service: " .. result.reason)
	end
end

-- The caller's side ---------------------------------------------------------------------------------------

-- mod_lua finds the input callback by its global name. A key press stops the prompt or the recording;
-- the keys then go to the service instead of speech.
function voiceai_on_input(_, input_type, input)
	if input_type == "dtmf" and type(input) == "table" and type(input.digit) == "string" then
		pressed = pressed .. input.digit
		return "break"
	end
	return "true"
end

-- Plays a file; false when it could not be played although the caller is still there.
local function play(file)
	if not session:ready() then
		return true
	end
	local played = session:streamFile(file)
	if played ~= 1 and session:ready() and pressed == "" then
		log("err", "could not play " .. file)
		return false
	end
	return true
end

-- A caller from whom no audio arrives leaves just the WAV header (FreeSWITCH writes no comfort noise): a
-- silent turn, for the service to answer, not a failure. A missing or shorter file is no recording.
local WAV_HEADER_BYTES = 44

-- The size of what recordFile wrote, nil when it wrote no WAV.
local function record(spec)
	session:recordFile(spec.file, spec.max_seconds, spec.silence_threshold, spec.silence_seconds)
	local handle = io.open(spec.file, "rb")
	if not handle then
		return nil
	end
	local size = handle:seek("end")
	handle:close()
	if size == nil or size < WAV_HEADER_BYTES then
		return nil
	end
	return size
end

-- recordFile into a file FreeSWITCH can't open hangs the call up (DESTINATION_OUT_OF_ORDER). This script
-- runs in FreeSWITCH's process, with its permissions: if it can create the file, so can recordFile.
local function can_record_to(path)
	local handle = io.open(path, "wb")
	if not handle then
		return false
	end
	handle:close()
	os.remove(path)
	return true
end

-- The first key stopped the prompt; the rest come within a short wait ('#' ends early).
local function collect_digits()
	local digits = pressed
	pressed = ""
	if session:ready() and #digits < MAX_DIGITS then
		digits = digits .. (session:getDigits(MAX_DIGITS - #digits, "#", DIGIT_WAIT_MS, INTERDIGIT_MS) or "")
	end
	digits = string.gsub(digits, "[^0-9*#]", "")
	return string.sub(digits, 1, MAX_DIGITS)
end

-- The call -------------------------------------------------------------------------------------------------

local function fall_back(reason)
	reason = tostring(reason)
	log("warning", "falling back: " .. reason)
	if session:ready() then
		session:streamFile(call.fallback_prompt)
	end
	if not session:ready() then
		return ended("caller", reason)
	end
	if is_extension(call.fallback) and is_context(call.fallback_context) then
		session:transfer(call.fallback, "XML", call.fallback_context)
		call.end_destination = call.fallback
	else
		log("err", "no usable voiceai_fallback destination: hanging up")
		call.hangup_cause = "NORMAL_TEMPORARY_FAILURE"
		session:hangup(call.hangup_cause)
	end
	ended("fallback", reason)
end

-- What the caller answers a prompt with, keys or speech, sent on to the service. Returns the next reply;
-- nil and a reason when that failed; nil alone when the caller is gone.
local function listen(reply)
	local taking_message = reply.action == "take_message"
	if pressed == "" or taking_message then
		pressed = ""
		local size = record(reply.record)
		-- A message counts even when the caller hangs up to finish it, as the prompt invites them to.
		if not session:ready() and not (taking_message and size and size > WAV_HEADER_BYTES) then
			return nil
		end
		if pressed == "" or taking_message then
			if not size then
				return nil, "no recording was written to " .. reply.record.file
			end
			return ask("/api/v1/calls/" .. call.uuid .. "/turns", { recording_file = reply.record.file })
		end
	end
	local digits = collect_digits()
	if digits == "" then
		return reply -- only '#' was pressed: prompt again
	end
	return ask("/api/v1/calls/" .. call.uuid .. "/dtmf", { digits = digits })
end

-- Plays each reply and does what it says until the call is transferred, hung up, or something fails.
local function converse(reply)
	for _ = 1, MAX_TURNS do
		pressed = ""
		if reply.record and not can_record_to(reply.record.file) then
			return fall_back("the recording can't be written to " .. reply.record.file)
		end
		if not play(reply.audio_file) then
			return fall_back("the reply audio could not be played")
		end
		if reply.action == "transfer" then
			if session:ready() then
				session:transfer(reply.destination, "XML", reply.context)
				ended("transfer")
			end
			return
		elseif reply.action == "hangup" then
			if session:ready() then
				call.hangup_cause = "NORMAL_CLEARING"
				session:hangup(call.hangup_cause)
				ended("hangup")
			end
			return
		end
		if not session:ready() then
			return -- the caller hung up during the prompt
		end
		local next_reply, problem = listen(reply)
		if not next_reply then
			if problem then
				fall_back(problem)
			end
			return
		end
		reply = next_reply
		log("info", "next action: " .. reply.action)
	end
	fall_back("too many turns")
end

-- The realtime part (voiceai/realtime.lua): "handled" when the call is done, else it goes on turn-based here.
local function stream_first()
	local outcome, reason = realtime.run({
		session = session,
		call = call,
		channel_var = channel_var,
		log = log,
		json = http.json,
		clean = http.clean_text,
		is_extension = is_extension,
		is_context = is_context,
	})
	log(outcome == "handled" and "info" or "warning", "realtime: " .. outcome .. ": " .. tostring(reason))
	if outcome == "resume" then
		call.resumed_from = "realtime" -- the service says a short line instead of the greeting
	end
	return outcome == "handled"
end

local function read_channel()
	call.uuid = session:get_uuid()
	call.mode = channel_var("voiceai_mode")
	call.domain_uuid = channel_var("domain_uuid")
	call.domain_name = channel_var("domain_name")
	call.url = string.gsub(channel_var("voiceai_url") or DEFAULT_URL, "/+$", "")
	call.timeout = whole_number(tonumber(channel_var("voiceai_timeout")), 1, 300) or DEFAULT_TIMEOUT_S
	call.fallback = channel_var("voiceai_fallback")
	call.fallback_context = channel_var("voiceai_fallback_context") or call.domain_name or channel_var("context")
	call.fallback_prompt = channel_var("voiceai_fallback_prompt") or DEFAULT_PROMPT
	local spool_dir = channel_var("voiceai_spool_dir")
	if spool_dir then
		call.spool_dir = string.gsub(spool_dir, "/+$", "")
	end
	call.secret = freeswitch.getGlobalVariable("voiceai_secret")
	if call.secret == "" then
		call.secret = nil
	end
end

local function main()
	read_channel()
	session:answer()
	session:setInputCallback("voiceai_on_input", "")
	local loaded, problem = pcall(load_modules)
	if not loaded then
		return fall_back("the voiceai modules could not be loaded: " .. tostring(problem))
	end
	if not is_uuid(call.uuid) then
		return fall_back("the channel has no usable uuid")
	end
	if not http.valid_base_url(call.url) then
		return fall_back("voiceai_url is not a plain http(s) URL")
	end
	if call.spool_dir and not is_plain_path(call.spool_dir) then
		return fall_back("voiceai_spool_dir is not a plain absolute path")
	end
	if call.secret and not http.valid_secret(call.secret) then
		return fall_back("the global variable voiceai_secret is not 16-256 characters of A-Z a-z 0-9 . _ ~ + / = -")
	end
	if call.domain_uuid and not is_uuid(call.domain_uuid) then
		call.domain_uuid = nil
	end
	if not call.domain_uuid and not is_context(call.domain_name) then
		return fall_back("the channel has neither domain_uuid nor domain_name")
	end
	log("info", "call " .. call.uuid .. " to " .. tostring(call.domain_name or call.domain_uuid) .. " via " .. call.url
		.. " (json: " .. http.json_name .. ")")
	if call.mode == "realtime" and stream_first() then
		return
	end
	local reply, problem = start_call()
	if not reply then
		return fall_back(problem)
	end
	converse(reply)
end

if session and session:ready() then
	local ok, err = pcall(main)
	if not ok then
		log("err", "script error: " .. tostring(err))
		pcall(fall_back, "script error: " .. tostring(err))
	end
	local told, end_err = pcall(end_call)
	if not told then
		log("err", "script error while ending the call: " .. tostring(end_err))
	end
end
