import Foundation

/// RFC 3339 timestamps with milliseconds, UTC: one format everywhere a time is written down.
public enum Timestamp {
    /// `2026-11-27T03:15:19.332Z`: UTC, milliseconds. Every audit event carries one, so the common
    /// case is plain arithmetic; the result is the same as Foundation's ISO 8601 style (tests hold them equal).
    public static func format(_ date: Date) -> String {
        let instant = date.timeIntervalSince1970
        guard instant >= 0, instant < 253_402_300_800 else { return foundationFormat(date) }
        let whole = instant.rounded(.down)
        // Milliseconds truncated from the fraction, as Foundation does.
        let millisecond = min(999, Int64(((instant - whole) * 1000).rounded(.down)))
        let seconds = Int64(whole)
        let days = seconds / 86_400
        var rest = seconds % 86_400
        let hour = rest / 3600
        rest %= 3600
        let minute = rest / 60
        let second = rest % 60
        // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
        let z = days + 719_468
        let era = z / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shifted = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shifted + 2) / 5 + 1
        let month = shifted < 10 ? shifted + 3 : shifted - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        var bytes = [UInt8](repeating: 0, count: 24)
        func put(_ value: Int64, _ at: Int, _ width: Int) {
            var value = value
            for index in stride(from: at + width - 1, through: at, by: -1) {
                bytes[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
        put(year, 0, 4)
        bytes[4] = UInt8(ascii: "-")
        put(month, 5, 2)
        bytes[7] = UInt8(ascii: "-")
        put(day, 8, 2)
        bytes[10] = UInt8(ascii: "T")
        put(hour, 11, 2)
        bytes[13] = UInt8(ascii: ":")
        put(minute, 14, 2)
        bytes[16] = UInt8(ascii: ":")
        put(second, 17, 2)
        bytes[19] = UInt8(ascii: ".")
        put(millisecond, 20, 3)
        bytes[23] = UInt8(ascii: "Z")
        return String(decoding: bytes, as: UTF8.self)
    }

    static func foundationFormat(_ date: Date) -> String {
        date.formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true)
                .timeSeparator(.colon).timeZone(separator: .omitted))
    }

    /// Reads `2026-12-31`, `2026-12-31T18:00:00` (UTC) or a time with a zone (`Z`, `+02:00`), with
    /// optional fractional seconds; nil for anything else, including impossible dates and times.
    public static func parse(_ string: String) -> Date? {
        // Foundation's ISO 8601 parsing rolls "T25:00" or "02-30" over into the next day or month,
        // and accepts a date followed by anything; so the shape and ranges are checked first.
        guard let shape = shape(of: string) else { return nil }
        // A zone must be read: the strategy without one reads "T18:00:00+02:00" as 18:00 UTC.
        if shape.hasZone { return try? Date(string, strategy: .iso8601) }
        if shape.hasTime {
            return try? Date(string, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))
        }
        return try? Date(string, strategy: .iso8601.year().month().day())
    }

    private static func shape(of string: String) -> (hasTime: Bool, hasZone: Bool)? {
        let pattern =
            #"([0-9]{4})-([0-9]{2})-([0-9]{2})(T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})?)?"#
        guard let regex = try? Regex(pattern), let match = string.wholeMatch(of: regex) else { return nil }
        func number(_ index: Int) -> Int? { match.output[index].substring.flatMap { Int($0) } }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let components = DateComponents(
            calendar: calendar, year: number(1), month: number(2), day: number(3), hour: number(5) ?? 0,
            minute: number(6) ?? 0, second: number(7) ?? 0)
        guard let month = components.month, (1...12).contains(month), let hour = components.hour, hour < 24,
            let minute = components.minute, minute < 60, let second = components.second, second < 60,
            components.isValidDate
        else { return nil }
        return (match.output[4].substring != nil, match.output[9].substring != nil)
    }
}

/// Durations as people write them in config and on the command line: `90s`, `15m`, `12h`, `7d`, `1h30m`.
public enum DurationText {
    /// `500ms`, `30s`, `15m`, `12h`, `7d`, or a sum such as `1h30m`.
    public static func parse(_ text: String) -> TimeInterval? {
        var total: TimeInterval = 0
        var number = ""
        var sawUnit = false
        let characters = Array(text.trimmingCharacters(in: .whitespaces))
        var index = 0
        while index < characters.count {
            let character = characters[index]
            index += 1
            if character.isASCII, character.isNumber {
                number.append(character)
                continue
            }
            guard let value = Double(number) else { return nil }
            switch character {
            case "m" where index < characters.count && characters[index] == "s":
                index += 1
                total += value / 1000
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            case "d": total += value * 86400
            default: return nil
            }
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit, total > 0 else { return nil }
        return total
    }

    public static func format(_ interval: TimeInterval) -> String {
        if interval > 0, interval < 0.9995 { return "\(max(1, Int((interval * 1000).rounded())))ms" }
        var seconds = Int(interval.rounded())
        var parts: [String] = []
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] where seconds >= size {
            parts.append("\(seconds / size)\(unit)")
            seconds %= size
        }
        if seconds > 0 || parts.isEmpty { parts.append("\(seconds)s") }
        return parts.joined()
    }
}
