// A very small JSON reader and writer: enough for lanai's answers, with no package to install.
// Objects become Dictionary<string, object>, arrays List<object>, numbers double, and null null.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Lanai.Sample
{
    public static class Json
    {
        public static object Parse(string text)
        {
            var reader = new Reader(text);
            reader.SkipSpace();
            object value = reader.Value();
            reader.SkipSpace();
            if (reader.Position != text.Length)
                throw new FormatException("unexpected text after the JSON value at " + reader.Position);
            return value;
        }

        /// <summary>The member <paramref name="name"/> of a JSON object, or null.</summary>
        public static object Get(object obj, string name)
        {
            var dict = obj as Dictionary<string, object>;
            object value;
            return dict != null && dict.TryGetValue(name, out value) ? value : null;
        }

        public static string Quote(string s)
        {
            var sb = new StringBuilder("\"");
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < ' ') sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else sb.Append(c);
                        break;
                }
            }
            return sb.Append('"').ToString();
        }

        public static string Number(double d)
        {
            return d.ToString("R", CultureInfo.InvariantCulture);
        }

        private sealed class Reader
        {
            private readonly string _s;
            public int Position;

            public Reader(string s) { _s = s; }

            public void SkipSpace()
            {
                while (Position < _s.Length && char.IsWhiteSpace(_s[Position])) Position++;
            }

            private char Peek()
            {
                if (Position >= _s.Length) throw new FormatException("unexpected end of JSON");
                return _s[Position];
            }

            private void Expect(string word)
            {
                if (string.CompareOrdinal(_s, Position, word, 0, word.Length) != 0)
                    throw new FormatException("expected " + word + " at " + Position);
                Position += word.Length;
            }

            public object Value()
            {
                char c = Peek();
                switch (c)
                {
                    case '{': return Object();
                    case '[': return Array();
                    case '"': return String();
                    case 't': Expect("true"); return true;
                    case 'f': Expect("false"); return false;
                    case 'n': Expect("null"); return null;
                    default: return NumberValue();
                }
            }

            private Dictionary<string, object> Object()
            {
                var result = new Dictionary<string, object>();
                Position++;
                SkipSpace();
                if (Peek() == '}') { Position++; return result; }
                while (true)
                {
                    SkipSpace();
                    string key = String();
                    SkipSpace();
                    Expect(":");
                    SkipSpace();
                    result[key] = Value();
                    SkipSpace();
                    char c = Peek();
                    Position++;
                    if (c == '}') return result;
                    if (c != ',') throw new FormatException("expected , or } at " + (Position - 1));
                }
            }

            private List<object> Array()
            {
                var result = new List<object>();
                Position++;
                SkipSpace();
                if (Peek() == ']') { Position++; return result; }
                while (true)
                {
                    SkipSpace();
                    result.Add(Value());
                    SkipSpace();
                    char c = Peek();
                    Position++;
                    if (c == ']') return result;
                    if (c != ',') throw new FormatException("expected , or ] at " + (Position - 1));
                }
            }

            private string String()
            {
                if (Peek() != '"') throw new FormatException("expected a string at " + Position);
                Position++;
                var sb = new StringBuilder();
                while (true)
                {
                    char c = Peek();
                    Position++;
                    if (c == '"') return sb.ToString();
                    if (c != '\\') { sb.Append(c); continue; }
                    char e = Peek();
                    Position++;
                    switch (e)
                    {
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'u':
                            if (Position + 4 > _s.Length) throw new FormatException("bad \\u escape");
                            sb.Append((char)int.Parse(_s.Substring(Position, 4), NumberStyles.HexNumber));
                            Position += 4;
                            break;
                        default: sb.Append(e); break; // \" \\ \/
                    }
                }
            }

            private double NumberValue()
            {
                int start = Position;
                while (Position < _s.Length && "+-0123456789.eE".IndexOf(_s[Position]) >= 0) Position++;
                if (start == Position) throw new FormatException("unexpected character at " + start);
                return double.Parse(_s.Substring(start, Position - start), NumberStyles.Float, CultureInfo.InvariantCulture);
            }
        }
    }
}
