--[[
JSON over HTTP through FreeSWITCH's mod_curl, the only HTTP client every FreeSWITCH build has.

mod_curl's `curl` API takes one command line: `<url> json timeout <s> content-type <mime> post <data>`.
Facts this module relies on (mod_curl.c, FreeSWITCH 1.10):
  * the line is split on blanks, and single quotes and backslashes are interpreted, so the post data must
    be one token free of those characters: we percent-encode every byte outside [A-Za-z0-9-._~];
  * mod_curl URL-decodes the post data (%XX only; '+' stays '+') before sending it;
  * `json` returns {"status_code":"200","body":"...","version":...,"phrase":...,"headers":[...]}
    (status_code is a string in 1.10, and {"status_code":"0","headers":[]} when no response came; "body" is
    absent when the response was empty; newer builds add "exit_code");
  * the body is cut at 64000 bytes (curl.conf `max-bytes`), so an oversized reply fails to decode;
  * without `timeout` libcurl waits forever: always pass one;
  * `append_headers <name:value>` adds a request header (one token: no blank after the colon);
  * 1.10 builds keep at most 10 arguments, so the line stays at 8, or 10 with the shared secret.
No value from the caller or the service ever reaches a shell or the command line unencoded.
]]

local http = {}

local ours = require("voiceai.json")

-- FreeSWITCH's own codec (mod_lua 1.10.12: freeswitch.JSON(), over cJSON) with the interface of ours:
-- encode(table) returns a string, decode(text) returns a value, both raise on bad input. cJSON's decode gives
-- no value at all for bad JSON (raised here), an empty table for a scalar document, floats for numbers, and
-- drops nulls (as ours and lunajson turn them into nil). The object never initialises its output format:
-- compact is asked for explicitly (the command line carries the body, each byte of it percent-encoded).
local function freeswitch_json()
	local ok, codec = pcall(function()
		local made = freeswitch.JSON()
		made:return_unformatted_json(true)
		return made
	end)
	if not ok or codec == nil then
		return nil
	end
	return {
		encode = function(value)
			return codec:encode(value)
		end,
		decode = function(text)
			local value = codec:decode(text)
			if value == nil then
				error("not JSON")
			end
			return value
		end,
	}
end

-- FreeSWITCH's JSON where mod_lua has it, then FusionPBX's lunajson, then our own module.
local function load_json()
	local native = freeswitch_json()
	if native then
		return native, "freeswitch.JSON"
	end
	local ok, lunajson = pcall(require, "resources.functions.lunajson")
	if ok and type(lunajson) == "table" and lunajson.encode and lunajson.decode then
		return lunajson, "lunajson"
	end
	return ours, "voiceai.json"
end

http.json, http.json_name = load_json()

-- A channel value made fit for a request field: valid UTF-8 (whichever JSON encoder is in use) and at most
-- `max_bytes` long, cut on a character boundary, so the service never refuses the call over a caller name.
function http.clean_text(value, max_bytes)
	if value == nil then
		return ""
	end
	local s = ours.clean_utf8(tostring(value))
	if #s <= max_bytes then
		return s
	end
	s = string.sub(s, 1, max_bytes)
	for i = #s, math.max(1, #s - 3), -1 do
		local b = string.byte(s, i)
		if b < 0x80 then
			break
		elseif b >= 0xC0 then
			local need = (b >= 0xF0 and 4) or (b >= 0xE0 and 3) or 2
			if #s - i + 1 < need then
				s = string.sub(s, 1, i - 1)
			end
			break
		end
	end
	return s
end

function http.url_encode(s)
	return (string.gsub(s, "[^A-Za-z0-9%-%._~]", function(c)
		return string.format("%%%02X", string.byte(c))
	end))
end

-- A base URL we are willing to put on a mod_curl command line: no blanks, quotes or backslashes.
function http.valid_base_url(url)
	return type(url) == "string"
		and #url <= 2048
		and string.find(url, "^https?://[A-Za-z0-9%-%._~:%[%]@]+[A-Za-z0-9%-%._~/%%:@]*$") ~= nil
end

local function decode(text)
	local ok, value = pcall(http.json.decode, text)
	if ok then
		return value
	end
	return nil
end

-- A shared secret we can put on the command line as is: one plain token (the service checks the same rule).
function http.valid_secret(secret)
	return type(secret) == "string"
		and #secret >= 16
		and #secret <= 256
		and string.find(secret, "^[A-Za-z0-9%._~+/=%-]+$") ~= nil
end

--[[
POST `payload` (a table) as JSON to `url`, with the header `X-VoiceAI-Secret` when `secret` is given (checked
with valid_secret by the caller). Returns a result table:
  ok       true when the service answered 2xx with a JSON object
  status   the HTTP status (0 when no response came at all)
  data     the decoded JSON object (also for error responses, when they carry one)
  reason   why it failed, for the log
]]
function http.post_json(api, url, payload, timeout_s, secret)
	local ok, body = pcall(http.json.encode, payload)
	if not ok then
		return { ok = false, status = 0, reason = "could not encode the request: " .. tostring(body) }
	end
	local words = {
		url,
		"json",
		"timeout",
		string.format("%d", math.max(1, math.floor(timeout_s or 20))),
		"content-type",
		"application/json",
	}
	if secret then
		table.insert(words, "append_headers")
		table.insert(words, "X-VoiceAI-Secret:" .. secret)
	end
	table.insert(words, "post")
	table.insert(words, http.url_encode(body))
	local line = table.concat(words, " ")
	local raw = api:execute("curl", line)
	local envelope = type(raw) == "string" and decode(raw) or nil
	if type(envelope) ~= "table" then
		return { ok = false, status = 0, reason = "mod_curl gave no JSON envelope: " .. string.sub(tostring(raw), 1, 120) }
	end
	local status = tonumber(envelope.status_code) or 0
	local exit_code = tonumber(envelope.exit_code) -- only in builds newer than 1.10
	if status == 0 then
		local detail = exit_code and " (curl exit code " .. string.format("%d", exit_code) .. ")" or ""
		return { ok = false, status = 0, reason = "no response" .. detail }
	end
	local data = type(envelope.body) == "string" and decode(envelope.body) or nil
	if type(data) ~= "table" then
		data = nil
	end
	if status < 200 or status > 299 then
		local detail = ""
		if data and type(data.error) == "table" and type(data.error.code) == "string" then
			detail = " (" .. data.error.code .. ")"
		end
		return { ok = false, status = status, data = data, reason = "HTTP " .. status .. detail }
	end
	if exit_code and exit_code ~= 0 then
		return { ok = false, status = status, reason = "transfer failed (curl exit code " .. string.format("%d", exit_code) .. ")" }
	end
	if not data then
		return { ok = false, status = status, reason = "the response is not a JSON object" }
	end
	return { ok = true, status = status, data = data }
end

return http
