-- B2: receiveNotification + deleteNotification pairs. Run with threads == connections so every
-- thread (own Lua state) drives one connection and one instance: GET the head, DELETE it, repeat.
-- Arguments: credentials file (lines "idInstance token").
local creds = {}
local counter = 0
local id, token
pending = nil
empty = 0
deleted = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local a, b = line:match("(%d+) (%x+)")
    if a then creds[#creds + 1] = { a, b } end
  end
  local c = creds[((tonumber(index) - 1) % #creds) + 1]
  id, token = c[1], c[2]
end

function request()
  if pending then
    local r = wrk.format("DELETE", "/waInstance" .. id .. "/deleteNotification/" .. token .. "/" .. pending)
    pending = nil
    return r
  end
  return wrk.format("GET", "/waInstance" .. id .. "/receiveNotification/" .. token .. "?receiveTimeout=5")
end

function response(status, headers, body)
  local receipt = body:match('^{"receiptId":(%d+)')
  if receipt then
    pending = receipt
  elseif body:match('"result":true') then
    deleted = deleted + 1
  elseif body == "null" then
    empty = empty + 1
  end
end

function done(summary, latency, requests)
  local d, e = 0, 0
  for _, t in ipairs(threads) do
    d = d + (t:get("deleted") or 0)
    e = e + (t:get("empty") or 0)
  end
  io.write(string.format("PAIRS %d EMPTY %d\n", d, e))
end
