import Foundation

// Build tool of the EmbedText plugin: writes a text file into a Swift source as a static string, so the
// binary carries it (no resource bundle to install beside it).
//
//   embed-text INPUT OUTPUT TYPE PROPERTY
//
// writes `extension TYPE { public static let PROPERTY: String = "<INPUT's text>" }` to OUTPUT.
let arguments = CommandLine.arguments
guard arguments.count == 5 else {
    FileHandle.standardError.write(Data("usage: embed-text INPUT OUTPUT TYPE PROPERTY\n".utf8))
    exit(64)
}
let (input, output, type, property) = (arguments[1], arguments[2], arguments[3], arguments[4])
guard let data = FileManager.default.contents(atPath: input), var text = String(data: data, encoding: .utf8) else {
    FileHandle.standardError.write(Data("embed-text: cannot read \(input) as UTF-8\n".utf8))
    exit(66)
}
if text.hasSuffix("\n") { text.removeLast() }
// A raw string literal with more '#' than any run in the text: nothing in it is an escape or its end.
var longestRun = 0
var run = 0
for character in text {
    run = character == "#" ? run + 1 : 0
    longestRun = max(longestRun, run)
}
let hashes = String(repeating: "#", count: longestRun + 1)
let source = """
    // Generated at build time by the EmbedText plugin from \((input as NSString).lastPathComponent). Do not edit.
    extension \(type) {
        public static let \(property): String = \(hashes)\"\"\"
    \(text)
    \"\"\"\(hashes)
    }

    """
do {
    try source.write(toFile: output, atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("embed-text: cannot write \(output): \(error)\n".utf8))
    exit(73)
}
